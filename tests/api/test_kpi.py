"""KPI routes over HTTP, computed by the KPI engine from telemetry in the real InfluxDB
(written here as the collector writes it) and from a stocktake posted through the API."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from shopfloor.shared import schema
from tests.api.conftest import ApiEnv
from tests.api.harness import iso

# Monday 2026-01-05, 08:00-08:10 Berlin: inside the example plant's early shift, no break.
T0 = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)
WINDOW_S = 600


def _write_running_machine(env: ApiEnv, machine: str) -> None:
    """1 Hz samples, running, product A (ideal 2.0 s): 0.45 parts/s, 10 % rejects."""
    tags = {"site": env.site, "line": "line1", "machine": machine}
    ms0 = int(T0.timestamp() * 1000)
    lines = [schema.line(schema.TELEMETRY, tags, {
        "state": 1, "total_count": int(i * 0.45), "reject_count": int(i * 0.045),
        "product": 1, schema.SEQ_FIELD: i + 100}, ms0 + i * 1000) for i in range(-5, WINDOW_S + 5)]
    r = httpx.post(f"{env.influx.url}/write",
                   params={"db": env.plant.database.database, "precision": "ms"},
                   content="\n".join(x for x in lines if x))
    assert r.status_code == 204, r.text


def test_oee_of_a_window(api_env: ApiEnv, admin: httpx.Client) -> None:
    _write_running_machine(api_env, "press1")
    r = admin.get("/api/v1/machines/press1/oee", params={
        "start": iso(T0), "end": iso(T0 + dt.timedelta(seconds=WINDOW_S))})
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["availability"] == pytest.approx(1.0, abs=0.01)
    assert result["performance"] == pytest.approx(0.9, abs=0.01)
    assert result["quality"] == pytest.approx(0.9, abs=0.01)
    assert result["oee"] == pytest.approx(0.81, abs=0.02)
    assert r.json()["line"] == "line1"


def test_oee_of_a_shift_and_refusals(api_env: ApiEnv, admin: httpx.Client) -> None:
    shift = admin.get("/api/v1/machines/press1/oee",
                      params={"period": "shift", "shift": "early", "date": "2026-01-05"})
    assert shift.status_code == 200, shift.text
    assert shift.json()["shift"] == "2026-01-05/early"
    assert shift.json()["start"].startswith("2026-01-05T05:00:00")  # 06:00 Berlin
    sunday = admin.get("/api/v1/machines/press1/oee",
                       params={"period": "shift", "shift": "early", "date": "2026-01-04"})
    assert sunday.status_code == 404 and sunday.json()["error"]["code"] == "no_shift"
    mixed = admin.get("/api/v1/machines/press1/oee", params={"shift": "early"})
    assert mixed.status_code == 422
    rolling = admin.get("/api/v1/machines/press1/oee", params={"period": "rolling",
                                                                "rolling_s": 600})
    assert rolling.status_code == 200


def test_wip_counts_from_the_stocktake(api_env: ApiEnv, admin: httpx.Client) -> None:
    at = dt.datetime(2026, 1, 7, 12, 0, tzinfo=dt.UTC)
    r = admin.post("/api/v1/lines/line1/stocktake", json={
        "count": 30, "buffers": {"press1": 10, "weld1": 20}, "at": iso(at)})
    assert r.status_code == 201, r.text
    wip = admin.get("/api/v1/lines/line1/wip", params={
        "start": iso(at + dt.timedelta(minutes=1)), "end": iso(at + dt.timedelta(minutes=2))})
    assert wip.status_code == 200, wip.text
    body = wip.json()["wip"]
    assert body["anchored"] is True and body["wip"] == 30
    assert {b["upstream"]: b["wip"] for b in body["buffers"]}["weld1"] == 20
