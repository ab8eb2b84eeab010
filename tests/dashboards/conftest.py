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
from shopfloor.shared.plant import Plant
from tests.dashboards import data
from tests.harness.services import InfluxDB


@dataclass(frozen=True)
class Filled:
    client: InfluxQLClient
    window: data.Window
    sites: tuple[str, str]
    lines: tuple[str, str]
    """Each site's first line (renamed per site: line1, line2); the other lines of the
    example plant keep their ids on both sites."""
    plants: tuple[Plant, Plant]


@pytest.fixture(scope="module")
def filled(influxdb: InfluxDB) -> Iterator[Filled]:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sites, lines = (f"{prefix}a", f"{prefix}b"), ("line1", "line2")
    now_ms = int(time.time() * 1000) // 60000 * 60000
    window = data.Window(now_ms - 2 * 3600 * 1000, now_ms)
    database = f"db_{prefix}"
    rows, audit = [], []
    plants = (data.site_plant(sites[0], lines[0]), data.site_plant(sites[1], lines[1]))
    for plant in plants:
        rows += data.plant_lines(plant, window, with_gap=plant is plants[0])
        audit += data.audit_lines(plant, window)
    data.write(influxdb.url, database, rows)
    data.write(influxdb.url, database, audit, precision="ns")
    client = influxql_client(influxdb.url, database)
    yield Filled(client, window, sites, lines, plants)
    client.close()
