"""Faults: the broker or the database going away and coming back, and concurrent retries
with one Idempotency-Key. Each fault test has its own broker or database."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiEnv
from tests.api.harness import (
    COMMAND_TIMEOUT_S,
    RESTRICTED,
    ApiServer,
    EdgeStandIn,
    create_database,
    load,
    make_keys,
    plant_data,
    wait_for,
)


@pytest.fixture
def own_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiEnv]:
    """An API on a broker and a database of its own (`own_mosquitto` / `own_influxdb`
    where the test asks for them, else the shared ones)."""
    names = request.fixturenames
    broker = request.getfixturevalue("own_mosquitto" if "own_mosquitto" in names
                                     else "mosquitto")
    influx = request.getfixturevalue("own_influxdb" if "own_influxdb" in names else "influxdb")
    keys = make_keys()
    data = plant_data(tmp_path, broker.port, influx.url, keys, timeout_s=COMMAND_TIMEOUT_S)
    plant = load(data)
    create_database(influx.url, plant.database.database)
    edge = EdgeStandIn(broker.port, plant.site.id)
    env = ApiEnv(plant, keys, ApiServer(plant, data["api"]["port"]), edge, influx, tmp_path)
    try:
        env.api.start()
        yield env
    finally:
        env.api.stop()  # the test may have replaced it
        edge.close()


def test_broker_down_answers_503_and_recovers(own_mosquitto: Any, own_env: ApiEnv) -> None:
    with own_env.client() as admin:
        own_mosquitto.stop()
        health = wait_for(lambda: (h := admin.get("/healthz")).status_code == 503 and h,
                          10, "unhealthy")
        assert health.json()["broker"]["ok"] is False and health.json()["database"]["ok"]
        r = admin.post("/api/v1/machines/press1/stop")
        assert r.status_code == 503 and r.json()["error"]["code"] == "broker_down"
        own_mosquitto.start()
        wait_for(lambda: admin.get("/healthz").status_code == 200, 20, "reconnected")
        wait_for(lambda: admin.post("/api/v1/machines/press1/stop").status_code == 200, 20,
                 "commands flow again")


def test_database_down_keeps_audit_until_back(own_influxdb: Any, own_env: ApiEnv) -> None:
    with own_env.client() as admin:
        own_influxdb.stop()
        assert admin.get("/healthz").status_code == 503
        history = admin.get("/api/v1/machines/press1/history")
        assert history.status_code == 503 and history.json()["status"] == "error"
        r = admin.post("/api/v1/machines/press1/setpoint",
                       json={"point": "speed_pct", "value": 61})
        assert r.status_code == 200, "control does not need the database"
        assert admin.get("/healthz").json()["audit_pending"] >= 2
        own_influxdb.start()
        wait_for(lambda: admin.get("/healthz").json()["audit_pending"] == 0, 30,
                 "audit flushed")
        entries = admin.get("/api/v1/audit", params={"machine": "press1"}).json()["items"]
    assert {e["outcome"] for e in entries if e["value"] == 61} == {"sent", "done"}


def test_concurrent_retry_waits_for_the_first_answer(api_env: ApiEnv) -> None:
    api_env.edge.mode["pack1"] = "silent"
    key = uuid.uuid4().hex
    answers: list[httpx.Response] = []

    def call() -> None:
        with api_env.client("operator", **{"Idempotency-Key": key}) as op:
            answers.append(op.post("/api/v1/machines/pack1/stop"))

    try:
        threads = [threading.Thread(target=call) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        api_env.edge.mode.pop("pack1")
    assert [a.status_code for a in answers] == [504, 504, 504]
    ids = {a.json()["commands"][0]["id"] for a in answers}
    assert len(ids) == 1
    assert sum(1 for _, c in api_env.edge.silent if c.id in ids) == 1


def test_command_looked_up_from_the_audit_after_a_restart(own_env: ApiEnv) -> None:
    with own_env.client() as admin:
        done = admin.post("/api/v1/machines/weld1/setpoint",
                          json={"point": "speed_pct", "value": 64}).json()["commands"][0]
        own_env.edge.mode["weld1"] = "silent"
        timed_out = admin.post("/api/v1/machines/weld1/stop").json()["commands"][0]
    own_env.api.stop()  # flushes the audit
    port = int(own_env.api.url.rsplit(":", 1)[1])
    own_env.api = ApiServer(own_env.plant, port).start()
    with own_env.client("operator") as op:
        again = op.get(f"/api/v1/commands/{done['id']}")
        assert again.status_code == 200, again.text
        for field in ("status", "point", "value", "readback", "requested_by", "expires_at"):
            assert again.json()[field] == done[field], field
        assert op.get(f"/api/v1/commands/{timed_out['id']}").json()["status"] == "timeout"
        assert op.get("/api/v1/commands/no-such-id").status_code == 404
    with own_env.client(RESTRICTED) as other_line:
        assert other_line.get(f"/api/v1/commands/{done['id']}").status_code == 404
