"""API fixtures: one API per module on the shared mosquitto and InfluxDB, with an edge
stand-in (tests of outcomes) — the real edge and simulator are set up in test_e2e.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.shared.plant import Plant
from tests.api.harness import (
    COMMAND_TIMEOUT_S,
    ApiServer,
    EdgeStandIn,
    create_database,
    load,
    make_keys,
    plant_data,
)


@dataclass
class ApiEnv:
    plant: Plant
    keys: dict[str, str]
    api: ApiServer
    edge: EdgeStandIn
    influx: Any
    workdir: Path

    @property
    def site(self) -> str:
        return self.plant.site.id

    def client(self, key: str | None = "admin", **headers: str) -> httpx.Client:
        if key is not None:
            headers["X-API-Key"] = self.keys.get(key, key)
        return httpx.Client(base_url=self.api.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def api_env(mosquitto: Any, influxdb: Any, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[ApiEnv]:
    workdir = tmp_path_factory.mktemp("api")
    keys = make_keys()
    data = plant_data(workdir, mosquitto.port, influxdb.url, keys, timeout_s=COMMAND_TIMEOUT_S)
    plant = load(data)
    create_database(influxdb.url, plant.database.database)
    edge = EdgeStandIn(mosquitto.port, plant.site.id)
    try:
        api = ApiServer(plant, data["api"]["port"]).start()
        yield ApiEnv(plant, keys, api, edge, influxdb, workdir)
        api.stop()
    finally:
        edge.close()


@pytest.fixture
def admin(api_env: ApiEnv) -> Iterator[httpx.Client]:
    with api_env.client("admin") as client:
        yield client
