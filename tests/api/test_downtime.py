"""Downtime events over HTTP on the real API, mosquitto and InfluxDB: events from the
finished states the collector stores (`state_duration`, written here as the collector
writes them) and the live state, classification by PLC code, classify / reclassify /
split with permissions and audit, and what the store then holds for the dashboards."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import httpx

from shopfloor.api.downtime.service import SYNC_PERIOD_S
from shopfloor.shared import schema, topics
from tests.api.conftest import ApiEnv
from tests.api.harness import COMMAND_TIMEOUT_S, RESTRICTED, ApiProcess, iso, load, wait_for


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _finished(env: ApiEnv, machine: str, start: dt.datetime, seconds: float, state: str,
              reason: str, line: str = "line1") -> None:
    tags = {"site": env.site, "line": line, "machine": machine, "state": state,
            "reason": reason}
    text = schema.line(schema.STATE_DURATION, tags, {"duration_s": float(seconds)}, _ms(start))
    r = httpx.post(f"{env.influx.url}/write", content=text,
                   params={"db": env.plant.database.database, "precision": "ms"})
    assert r.status_code == 204, r.text


def _stored(env: ApiEnv, query: str) -> list[dict[str, Any]]:
    series = env.influx.query(query, env.plant.database.database)
    out = []
    for s in series:
        for values in s["values"]:
            out.append({**(s.get("tags") or {}), **dict(zip(s["columns"], values, strict=True))})
    return out


def _events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = client.get("/api/v1/downtime/events", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_events_from_finished_states(api_env: ApiEnv, admin: httpx.Client) -> None:
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=50)
    _finished(api_env, "weld1", t0, 300, "stopped", "operator_stop")  # generic: unclassified
    _finished(api_env, "weld1", t0 + dt.timedelta(seconds=300), 400, "running", "none")
    _finished(api_env, "weld1", t0 + dt.timedelta(seconds=700), 30, "stopped", "jam")  # short
    _finished(api_env, "weld1", t0 + dt.timedelta(seconds=730), 200, "stopped", "jam")
    _finished(api_env, "weld1", t0 + dt.timedelta(seconds=930), 150, "offline",
              "device_timeout")
    window = {"machine": "weld1", "start": iso(t0), "end": iso(t0 + dt.timedelta(hours=1))}
    items = _events(admin, **window)
    assert [(e["state"], e["plc_reason"], e["duration_s"], e["classified"]) for e in items] == [
        ("offline", "device_timeout", 150.0, False),
        ("stopped", "jam", 200.0, True),
        ("stopped", "operator_stop", 300.0, False)]
    jam = items[1]
    assert jam["id"] == f"weld1:{_ms(t0) + 730_000}"
    assert jam["parts"] == [{"start": iso(t0 + dt.timedelta(seconds=730)),
                             "end": iso(t0 + dt.timedelta(seconds=930)), "reason": "jam",
                             "category": "mechanical", "loss": "unplanned", "by": "plc",
                             "comment": ""}]
    unclassified = _events(admin, unclassified=True, **window)
    assert [e["plc_reason"] for e in unclassified] == ["device_timeout", "operator_stop"]
    first = admin.get("/api/v1/downtime/events", params={**window, "limit": 2}).json()
    assert len(first["items"]) == 2 and first["page"]["next_offset"] == 2
    assert admin.get(f"/api/v1/downtime/events/{jam['id']}").json() == jam
    assert admin.get("/api/v1/downtime/events/weld1:1").status_code == 404
    assert admin.get("/api/v1/downtime/events/nope:1").status_code == 404
    assert admin.get("/api/v1/downtime/events/x'y:1").status_code == 422

    # the API keeps the store: every finished event gets its point (sync), PLC-classified
    # time under its reason, the rest under `unclassified`
    def sums() -> dict[str, float]:
        rows = _stored(api_env, f"SELECT sum(duration_s) FROM downtime WHERE site = "
                                f"'{api_env.site}' AND machine = 'weld1' GROUP BY reason")
        return {r["reason"]: r["sum"] for r in rows}

    assert wait_for(lambda: sums() == {"jam": 200.0, "unclassified": 450.0}, 15,
                    "downtime points of weld1")


def test_classify_reclassify_split_with_permissions_and_audit(api_env: ApiEnv) -> None:
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=40)
    _finished(api_env, "paint1", t0, 600, "stopped", "operator_stop")
    event_id = f"paint1:{_ms(t0)}"
    path = f"/api/v1/downtime/events/{event_id}"
    with (api_env.client("operator") as op, api_env.client("supervisor") as sup,
          api_env.client("viewer") as viewer, api_env.client(RESTRICTED) as other):
        assert viewer.post(f"{path}/classify", json={"reason": "jam"}).status_code == 403
        # another line's event does not exist for a line-restricted key (test_visibility.py)
        assert other.post(f"{path}/classify", json={"reason": "jam"}).status_code == 404
        assert other.get(path).status_code == 404
        bad = op.post(f"{path}/classify", json={"reason": "no_such_reason"})
        assert bad.status_code == 422 and "unknown reason" in bad.json()["error"]["message"]
        # line1 adds colour_change to the plant-wide tree
        r = op.post(f"{path}/classify", json={"reason": "colour_change", "comment": "blue"})
        assert r.status_code == 200, r.text
        assert r.json()["parts"][0]["by"] == "operator" and r.json()["classified"]
        # a person's reason: operators may not change it, supervisors may
        assert op.post(f"{path}/classify", json={"reason": "jam"}).status_code == 403
        assert op.post(f"{path}/split", json={"at": [iso(t0)]}).status_code == 403
        r = sup.post(f"{path}/split", json={
            "at": [iso(t0 + dt.timedelta(seconds=120))], "reasons": ["jam", "motor"],
            "comment": "the jam broke the motor"})
        assert r.status_code == 200, r.text
        assert [(p["reason"], p["end"]) for p in r.json()["parts"]] == [
            ("jam", iso(t0 + dt.timedelta(seconds=120))), ("motor", iso(t0 + dt.timedelta(
                seconds=600)))]
        outside = sup.post(f"{path}/split", json={"at": [iso(t0 + dt.timedelta(hours=1))]})
        assert outside.status_code == 422
        r = sup.post(f"{path}/classify", json={"reason": "hydraulic", "part": 1})
        assert r.status_code == 200, r.text
        assert sup.get(path).json()["parts"][1]["reason"] == "hydraulic"

        def audit() -> list[dict[str, Any]]:
            return sup.get("/api/v1/audit", params={"command_id": event_id}).json()["items"]

        entries = wait_for(lambda: len(audit()) == 3 and audit(), what="downtime audit")
    assert [(e["action"], e["requested_by"]) for e in reversed(entries)] == [
        ("classify", "operator"), ("split", "supervisor"), ("reclassify", "supervisor")]
    first = json.loads(entries[-1]["detail"])
    assert first["before"] == [{"start_ms": _ms(t0), "reason": None, "by": ""}]
    assert first["after"] == [{"start_ms": _ms(t0), "reason": "colour_change",
                               "by": "operator"}]
    # the store sums durations per reason: old reasons are tombstoned, not double counted
    rows = _stored(api_env, f"SELECT sum(duration_s) FROM downtime WHERE site = "
                            f"'{api_env.site}' AND machine = 'paint1' GROUP BY reason")
    assert {r["reason"]: r["sum"] for r in rows if r["sum"]} == {"jam": 120.0,
                                                                "hydraulic": 480.0}
    active = _stored(api_env, f"SELECT * FROM downtime WHERE site = '{api_env.site}' AND "
                              "machine = 'paint1' AND active = true")
    assert sorted((r["reason"], r["loss"], r["by"]) for r in active) == [
        ("hydraulic", "unplanned", "supervisor"), ("jam", "unplanned", "supervisor")]


def test_open_event_classified_then_finished(api_env: ApiEnv, admin: httpx.Client) -> None:
    site, edge = api_env.site, api_env.edge
    since = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=200)
    state = topics.machine_topic(site, "line1", "press1", topics.STATE)
    edge.publish(state, {"v": 1, "ts": iso(since), "state": "idle", "reason": "other",
                         "since": iso(since)}, retain=True)
    event_id = f"press1:{_ms(since)}"
    found = wait_for(lambda: [e for e in _events(admin, machine="press1") if e["id"] == event_id],
                     what="the open event")
    assert found[0]["end"] is None and not found[0]["classified"]
    assert found[0]["duration_s"] >= 200
    r = admin.post(f"/api/v1/downtime/events/{event_id}/classify", json={"reason": "meeting"})
    assert r.status_code == 200, r.text
    assert r.json()["parts"][0]["loss"] == "planned" and r.json()["end"] is None
    # it ends: the edge says running, the collector stores the finished state
    end = since + dt.timedelta(seconds=260)
    edge.publish(state, {"v": 1, "ts": iso(end), "state": "running", "since": iso(end)},
                 retain=True)
    _finished(api_env, "press1", since, 260, "idle", "other")

    def stored() -> list[dict[str, Any]]:
        return _stored(api_env, f"SELECT * FROM downtime WHERE site = '{site}' AND "
                                "machine = 'press1' AND active = true")

    rows = wait_for(lambda: [r for r in stored() if r["duration_s"] == 260.0], 15,
                    "the classified event's duration")
    assert (rows[0]["reason"], rows[0]["loss"], rows[0]["event"]) == (
        "meeting", "planned", event_id)
    assert rows[0]["end_ms"] == _ms(end)
    event = admin.get(f"/api/v1/downtime/events/{event_id}").json()
    assert event["end"] == iso(end) and event["parts"][0]["reason"] == "meeting"


def test_reason_tree_of_a_line(admin: httpx.Client) -> None:
    tree = admin.get("/api/v1/lines/line1/reasons").json()
    assert tree["threshold_s"] == 120
    assert [c["id"] for c in tree["categories"]][-1] == "paint"
    line2 = admin.get("/api/v1/lines/line2/reasons").json()
    assert "paint" not in [c["id"] for c in line2["categories"]]


def test_classifications_survive_an_api_restart(mosquitto: Any, influxdb: Any,
                                                tmp_path: Path) -> None:
    """kill -9 the API after a split and classification, start it again: the event has
    its parts and reasons, and the new process's first sync (two days back) writes
    nothing over them (the store's sums per reason are unchanged)."""
    rig = ApiProcess.create(tmp_path, mosquitto.port, influxdb.url, COMMAND_TIMEOUT_S)
    try:
        rig.api.start()
        plant = load(rig.data)
        env = ApiEnv(plant, rig.keys, None, rig.edge, influxdb, tmp_path)  # type: ignore[arg-type]
        t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
        _finished(env, "weld1", t0, 900, "stopped", "operator_stop")
        event_id = f"weld1:{_ms(t0)}"
        path = f"/api/v1/downtime/events/{event_id}"
        with rig.client("supervisor") as sup:
            r = sup.post(f"{path}/split", json={"at": [iso(t0 + dt.timedelta(seconds=300))],
                                                "reasons": ["jam", "meeting"]})
            assert r.status_code == 200, r.text
            before = sup.get(path).json()
        query = (f"SELECT sum(duration_s) FROM downtime WHERE site = '{env.site}' "
                 "GROUP BY reason")
        sums = {r["reason"]: r["sum"] for r in _stored(env, query)}
        assert sums == {"jam": 300.0, "meeting": 600.0}
        rig.api.kill()
        rig.api.start()
        with rig.client("viewer") as viewer:
            assert viewer.get(path).json() == before
            # the restarted API's sync has run (its health answers only once started)
            time.sleep(2 * SYNC_PERIOD_S)
            assert viewer.get(path).json() == before
        assert {r["reason"]: r["sum"] for r in _stored(env, query)} == sums
    finally:
        rig.close()
