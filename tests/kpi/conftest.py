"""KPI test fixtures: a plant bound to the shared real InfluxDB (own database and site per
test), and storing telemetry exactly as the collector encodes it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shopfloor.collector.encode import Encoder
from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.kpi.model import Sample
from shopfloor.kpi.store import KpiStore, chunks
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.services import InfluxDB
from tests.kpi.plants import plant_data

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def as_telemetry(sample: Sample) -> Telemetry:
    ts = EPOCH + dt.timedelta(milliseconds=sample.ts_ms)
    return Telemetry(ts=ts, seq=sample.seq, values=dict(sample.values))


def encode(plant: Plant, machine: str, samples: list[Sample]) -> list[str]:
    """Line protocol of samples, as the collector writes them."""
    encoder = Encoder(plant)
    line = plant.machines[machine].line
    now = dt.datetime.now(dt.UTC)
    out = []
    for s in samples:
        msg = ParsedMessage(Kind.TELEMETRY, plant.site.id, as_telemetry(s), line=line,
                            machine=machine)
        encoded = encoder.encode(msg, now)
        assert encoded.line is not None and not encoded.bad_points
        out.append(encoded.line)
    return out


@pytest.fixture
def make_plant(influxdb: InfluxDB, unique_site: str) -> Callable[..., Plant]:
    """plant(**plant_data kwargs) bound to the shared InfluxDB, own database and site."""
    def build(**kwargs: Any) -> Plant:
        db = {"url": influxdb.url, "database": f"kpi_{uuid.uuid4().hex[:10]}"}
        return parse_plant(plant_data(site=unique_site, database=db, **kwargs))
    return build


@pytest.fixture
def open_store() -> Iterator[Callable[[Plant], KpiStore]]:
    stores: list[KpiStore] = []

    def opener(plant: Plant) -> KpiStore:
        store = KpiStore.open(plant)
        stores.append(store)
        return store
    yield opener
    for store in stores:
        store.close()


def store_samples(store: KpiStore, machine: str, samples: list[Sample]) -> None:
    for batch in chunks(encode(store.plant, machine, samples)):
        store.write(batch)
