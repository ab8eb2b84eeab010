"""A real InfluxDB holding two hours of a two-site plant (see data.py), shared by the
dashboard query tests of this folder."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from shopfloor.dashboards.verify import influxql_client
from shopfloor.shared.influx import InfluxQLClient
from tests.dashboards import data
from tests.harness.services import InfluxDB


@dataclass(frozen=True)
class Filled:
    client: InfluxQLClient
    window: data.Window
    sites: tuple[str, str]
    lines: tuple[str, str]


@pytest.fixture(scope="module")
def filled(influxdb: InfluxDB) -> Iterator[Filled]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sites, lines = (f"{prefix}a", f"{prefix}b"), ("line1", "line2")
    now_ms = int(time.time() * 1000) // 60000 * 60000
    window = data.Window(now_ms - 2 * 3600 * 1000, now_ms)
    database = f"db_{prefix}"
    rows, audit = [], []
    for site, line in zip(sites, lines, strict=True):
        plant = data.site_plant(site, line)
        rows += data.plant_lines(plant, window, with_gap=site == sites[0])
        audit += data.audit_lines(plant, window)
    data.write(influxdb.url, database, rows)
    data.write(influxdb.url, database, audit, precision="ns")
    client = influxql_client(influxdb.url, database)
    yield Filled(client, window, sites, lines)
    client.close()
