"""Read routes over HTTP: plant model, live state from retained MQTT topics, history,
state changes and downtime from InfluxDB, the audit, stocktakes, health and metrics."""

from __future__ import annotations

import datetime as dt

import httpx

from shopfloor.shared import schema, topics
from tests.api.conftest import ApiEnv
from tests.api.harness import iso, wait_for


def test_plant_and_machine_model(api_env: ApiEnv, admin: httpx.Client) -> None:
    plant = admin.get("/api/v1/plant").json()
    assert [ln["id"] for ln in plant["lines"]] == [ln.id for ln in api_env.plant.lines]
    assert "line2" in [ln["id"] for ln in plant["lines"]]  # the harness's restricted line
    assert [ln["stations"] for ln in plant["lines"]] == [
        ln.stations for ln in api_env.plant.lines]
    assert plant["lines"][0]["stations"] == ["press1", "weld1", "paint1", "pack1"]
    assert [s["name"] for s in plant["shifts"]] == ["early", "late", "night"]
    machine = admin.get("/api/v1/machines/press1").json()
    speed = next(p for p in machine["points"] if p["name"] == "speed_pct")
    assert speed["writable"] and (speed["min"], speed["max"]) == (10, 120)
    assert machine["control"]["run"] == "run"
    assert admin.get("/api/v1/machines/nope").status_code == 404


def test_live_state_from_retained_topics(api_env: ApiEnv, admin: httpx.Client) -> None:
    site, edge = api_env.site, api_env.edge
    now = dt.datetime.now(dt.UTC)
    edge.publish(topics.machine_topic(site, "line1", "pack1", topics.STATE),
                 {"v": 1, "ts": iso(now), "state": "stopped", "reason": "jam", "code": 10,
                  "product": "A", "since": iso(now - dt.timedelta(seconds=30))}, retain=True)
    edge.publish(topics.machine_topic(site, "line1", "pack1", topics.TELEMETRY),
                 {"v": 1, "ts": iso(now), "seq": 7, "values": {"speed_pct": 80, "power": 1.5},
                  "quality": {"temperature": "bad"}})
    edge.publish(topics.status_topic(site, "edge1"),
                 {"v": 1, "online": True, "agent": "edge1", "ts": iso(now)}, retain=True)
    edge.publish(topics.machine_topic(site, "line1", "pack1", topics.STATE), {"v": 99})  # bad

    def state() -> dict | None:
        body = admin.get("/api/v1/machines/pack1/state").json()
        return body if body["online"] and body["values"] else None

    body = wait_for(state, what="live state")
    assert (body["state"], body["reason"], body["code"]) == ("stopped", "jam", 10)
    assert body["values"]["speed_pct"] == 80 and body["bad_quality"] == ["temperature"]
    page = admin.get("/api/v1/state", params={"line": "line1", "limit": 2}).json()
    assert [m["machine"] for m in page["items"]] == ["press1", "weld1"]
    assert page["page"]["next_offset"] == 2
    rest = admin.get("/api/v1/state", params={"line": "line1", "offset": 2}).json()
    assert [m["machine"] for m in rest["items"]] == ["paint1", "pack1"]
    assert rest["page"]["next_offset"] is None


def _write(env: ApiEnv, lines: list[str | None]) -> None:
    r = httpx.post(f"{env.influx.url}/write",
                   params={"db": env.plant.database.database, "precision": "ms"},
                   content="\n".join(x for x in lines if x))
    assert r.status_code == 204, r.text


def test_history_raw_and_aggregated(api_env: ApiEnv, admin: httpx.Client) -> None:
    start = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
    tags = {"site": api_env.site, "line": "line1", "machine": "weld1"}
    ms0 = int(start.timestamp() * 1000)
    _write(api_env, [schema.line(schema.TELEMETRY, tags, {"speed_pct": i, "_seq": i},
                                 ms0 + i * 10_000) for i in range(36)])  # 6 minutes
    raw = admin.get("/api/v1/machines/weld1/history", params={
        "start": iso(start), "end": iso(start + dt.timedelta(hours=1)), "point": "speed_pct",
        "limit": 10, "offset": 5}).json()
    assert [r["values"]["speed_pct"] for r in raw["rows"]] == list(range(5, 15))
    assert raw["page"]["next_offset"] == 15
    agg = admin.get("/api/v1/machines/weld1/history", params={
        "start": iso(start), "end": iso(start + dt.timedelta(hours=1)), "point": "speed_pct",
        "interval_s": 60, "aggregation": "max"}).json()
    assert [r["values"]["speed_pct"] for r in agg["rows"]] == [5, 11, 17, 23, 29, 35]
    assert agg["rows"][1]["time"].startswith("2026-01-05T08:01:00")


def test_history_refuses_bad_parameters(admin: httpx.Client) -> None:
    url = "/api/v1/machines/weld1/history"
    injected = admin.get(url, params={"point": 'speed_pct" FROM x --'})
    assert injected.status_code == 422 and injected.json()["error"]["code"] == "unknown_point"
    naive = admin.get(url, params={"start": "2026-01-05T08:00:00"})
    assert naive.status_code == 422 and naive.json()["error"]["code"] == "bad_window"
    backwards = admin.get(url, params={"start": "2026-01-05T09:00:00Z",
                                       "end": "2026-01-05T08:00:00Z"})
    assert backwards.status_code == 422
    assert admin.get(url, params={"point": "work_order", "interval_s": 60}).status_code == 422
    assert admin.get(url, params={"interval_s": 1, "start": "2025-01-01T00:00:00Z",
                                  "end": "2026-01-01T00:00:00Z"}).status_code == 422


def test_state_changes_and_downtime(api_env: ApiEnv, admin: httpx.Client) -> None:
    t0 = dt.datetime(2026, 1, 6, 10, 0, tzinfo=dt.UTC)
    tags = {"site": api_env.site, "line": "line1", "machine": "paint1"}

    def change(minute: int, state: str, reason: str | None = None) -> str | None:
        fields = {"state": state, **({"reason": reason} if reason else {})}
        at = t0 + dt.timedelta(minutes=minute)
        return schema.line(schema.MACHINE_STATE, tags, fields, int(at.timestamp() * 1000))

    _write(api_env, [change(-5, "stopped", "jam"), change(3, "running"),
                     change(10, "idle", "starved"), change(12, "idle", "starved"),
                     change(15, "running"), change(50, "stopped", "motor_fault")])
    window = {"start": iso(t0), "end": iso(t0 + dt.timedelta(hours=1))}
    states = admin.get("/api/v1/machines/paint1/states", params=window).json()
    assert [s["state"] for s in states["items"]] == [
        "running", "idle", "idle", "running", "stopped"]
    down = admin.get("/api/v1/machines/paint1/downtime", params=window).json()
    assert [(e["reason"], e["duration_s"], e["ongoing"]) for e in down["items"]] == [
        ("jam", 180.0, False), ("starved", 300.0, False), ("motor_fault", 600.0, True)]
    assert down["total_s"] == 1080.0


def test_stocktake_and_audit(api_env: ApiEnv, admin: httpx.Client) -> None:
    r = admin.post("/api/v1/lines/line1/stocktake",
                   json={"count": 30, "buffers": {"press1": 10, "weld1": 20}})
    assert r.status_code == 201, r.text
    rows = api_env.influx.query(
        f"SELECT * FROM wip_anchor WHERE site = '{api_env.site}'", api_env.plant.database.database)
    records = [dict(zip(rows[0]["columns"], v, strict=True)) for v in rows[0]["values"]]
    stored = {r["buffer"]: r["count"] for r in records}
    assert stored == {"_line": 30, "press1": 10, "weld1": 20}
    bad = admin.post("/api/v1/lines/line1/stocktake",
                     json={"count": 5, "buffers": {"pack1": 5}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_buffer"
    assert admin.post("/api/v1/lines/line1/stocktake",
                      json={"count": 5, "buffers": {"press1": 4}}).status_code == 422

    assert admin.post("/api/v1/machines/pack1/setpoint",
                      json={"point": "speed_pct", "value": 66}).status_code == 200
    assert admin.post("/api/v1/machines/pack1/setpoint",
                      json={"point": "speed_pct", "value": 666}).status_code == 422

    def audit(**params: str) -> list[dict]:
        return admin.get("/api/v1/audit", params={"machine": "pack1", **params}).json()["items"]

    done = wait_for(lambda: [e for e in audit(outcome="done") if e["value"] == 66],
                    what="audit entry")
    assert done[0]["requested_by"] == "admin" and done[0]["readback"] == 66
    assert done[0]["action"] == "setpoint" and done[0]["point"] == "speed_pct"
    assert wait_for(lambda: [e for e in audit(outcome="sent") if e["value"] == 66])
    refused = wait_for(lambda: audit(outcome="refused"))
    assert "out_of_range" in refused[0]["detail"]
    assert wait_for(lambda: admin.get("/api/v1/audit", params={"action": "stocktake"}
                                      ).json()["items"])
    one = admin.get("/api/v1/audit", params={"command_id": done[0]["command_id"]}).json()
    assert {e["outcome"] for e in one["items"]} == {"sent", "done"}
    assert admin.get("/api/v1/audit", params={"requested_by": "x' OR ''='"}).status_code == 422


def test_health_and_metrics(api_env: ApiEnv, admin: httpx.Client) -> None:
    assert admin.post("/api/v1/machines/weld1/alarm-ack").status_code == 200
    assert admin.post("/api/v1/machines/weld1/setpoint",
                      json={"point": "speed_pct", "value": 500}).status_code == 422
    with api_env.client(None) as anon:
        health = anon.get("/healthz")
        assert health.status_code == 200 and health.json()["broker"]["ok"]
        assert health.json()["database"]["detail"].startswith("InfluxDB 1.")
        metrics = anon.get("/metrics")
    assert metrics.status_code == 200  # a plain route: no 307 to /metrics/
    text = metrics.text
    assert 'shopfloor_api_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "shopfloor_api_request_seconds_bucket" in text
    assert 'shopfloor_api_commands_total{action="alarm_ack",outcome="done"} 1.0' in text
    assert 'shopfloor_api_refused_total{action="setpoint",code="out_of_range"}' in text
    assert 'route="/api/v1/machines/{machine}/alarm-ack",status="200"' in text
