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
    """1 Hz samples, running, product A (press1's ideal 1.4 s): 0.9 / 1.4 parts/s (90 %
    performance), 10 % rejects."""
    tags = {"site": env.site, "line": "line1", "machine": machine}
    ms0 = int(T0.timestamp() * 1000)
    lines = [schema.line(schema.TELEMETRY, tags, {
        "state": 1, "total_count": int(i * 0.9 / 1.4), "reject_count": int(i * 0.09 / 1.4),
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
    unknown = admin.get("/api/v1/machines/press1/oee",  # (the example runs every day)
                        params={"period": "shift", "shift": "brunch", "date": "2026-01-04"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "no_shift"
    mixed = admin.get("/api/v1/machines/press1/oee", params={"shift": "early"})
    assert mixed.status_code == 422
    rolling = admin.get("/api/v1/machines/press1/oee", params={"period": "rolling",
                                                                "rolling_s": 600})
    assert rolling.status_code == 200


def test_wip_counts_from_the_stocktake(api_env: ApiEnv, admin: httpx.Client) -> None:
    at = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=1)
    r = admin.post("/api/v1/lines/line1/stocktake", json={
        "count": 30, "buffers": {"press1": 10, "weld1": 20}, "at": iso(at)})
    assert r.status_code == 201, r.text
    wip = admin.get("/api/v1/lines/line1/wip", params={
        "start": iso(at + dt.timedelta(minutes=1)), "end": iso(at + dt.timedelta(minutes=2))})
    assert wip.status_code == 200, wip.text
    body = wip.json()["wip"]
    assert body["anchored"] is True and body["wip"] == 30
    assert {b["upstream"]: b["wip"] for b in body["buffers"]}["weld1"] == 20
    assert all(type(body[k]) is int for k in ("wip", "change", "inflow", "outflow_good"))
    # a window that starts before the stocktake: the level counts backwards from it
    before = admin.get("/api/v1/lines/line1/wip", params={
        "start": iso(at - dt.timedelta(minutes=5)), "end": iso(at + dt.timedelta(minutes=2))})
    assert before.status_code == 200, before.text
    assert before.json()["wip"]["wip"] == 30 and before.json()["wip"]["anchor_ms"] == int(
        at.timestamp() * 1000)


def test_stocktake_far_in_the_past_or_future_is_refused(api_env: ApiEnv,
                                                        admin: httpx.Client) -> None:
    """A stocktake dated 1970 (or next week) would make every later WIP count from then:
    422 naming the field, nothing stored."""
    now = dt.datetime.now(dt.UTC)
    for at in (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), now - dt.timedelta(days=32),
               now + dt.timedelta(hours=1)):
        r = admin.post("/api/v1/lines/line2/stocktake", json={"count": 5, "at": iso(at)})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "bad_time" and error["message"].startswith("at: "), error
    stored = httpx.get(f"{api_env.influx.url}/query", params={
        "db": api_env.plant.database.database, "q": f"SELECT count(*) FROM wip_anchor "
        f"WHERE site = '{api_env.site}' AND line = 'line2'"}).json()
    assert "series" not in stored["results"][0]
    ok = admin.post("/api/v1/lines/line2/stocktake",
                    json={"count": 5, "at": iso(now - dt.timedelta(days=30))})
    assert ok.status_code == 201, ok.text


def test_engine_work_is_bounded_not_by_an_old_anchor(api_env: ApiEnv,
                                                     admin: httpx.Client) -> None:
    """An anchor dated 1970 already in the database (written before the API refused it):
    WIP of a later window would need 56 years of flow. Refused with 422 too_much_work
    and its reason (it used to compute minutes of CPU and GBs, then 500); so are an OEE
    window without stored rollups beyond the raw bound and a WIP window beyond its bound."""
    site = api_env.site
    r = httpx.post(f"{api_env.influx.url}/write", params={
        "db": api_env.plant.database.database, "precision": "ms"},
        content=f"wip_anchor,buffer=_line,line=line2,site={site} count=3i 86400000")
    assert r.status_code == 204, r.text
    end = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)  # before the test above's count
    cases = [
        ("/api/v1/lines/line2/wip", end - dt.timedelta(hours=1), "raw telemetry"),
        ("/api/v1/machines/solo1/oee", end - dt.timedelta(days=300), "raw telemetry"),
        ("/api/v1/lines/line2/wip", end - dt.timedelta(days=40), "per minute"),
    ]
    for path, start, reason in cases:
        r = admin.get(path, params={"start": iso(start), "end": iso(end)})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "too_much_work" and reason in error["message"], error
    assert admin.get("/api/v1/machines/solo1/oee", params={
        "start": iso(end - dt.timedelta(hours=1)), "end": iso(end)}).status_code == 200
