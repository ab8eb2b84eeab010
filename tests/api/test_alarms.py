"""Alarm routes over real HTTP on transitions the rule engine made and the alarm
component's line builder stored in the real InfluxDB: instances not in normal, history
with filters and pages, and a line-restricted key that sees only its lines."""

from __future__ import annotations

import datetime as dt
import time

import httpx

from shopfloor.alarms.engine import Engine, Record
from shopfloor.alarms.lifecycle import Event
from shopfloor.alarms.service import transition_line
from shopfloor.shared.alarm_rules import RuleKind
from shopfloor.shared.contract import StatePayload
from shopfloor.shared.enums import EventKind, MachineState
from tests.api.conftest import ApiEnv
from tests.api.harness import iso

STOPPED = RuleKind.MACHINE_STOPPED


def _state(state: MachineState, since: float) -> StatePayload:
    at = dt.datetime.fromtimestamp(since, dt.UTC)
    return StatePayload(ts=at, state=state, since=at)


def _store(env: ApiEnv, records: list[Record]) -> None:
    # alternating shift tags: the latest state of an instance spans shifts
    lines = [transition_line(env.site, r, ("early", "late")[i % 2])
             for i, r in enumerate(records)]
    r = httpx.post(f"{env.influx.url}/write",
                   params={"db": env.plant.database.database, "precision": "ms"},
                   content="\n".join(x for x in lines if x))
    assert r.status_code == 204, r.text


def _scenario(env: ApiEnv, t0: float) -> None:
    """press1 acknowledged, weld1 cleared unacknowledged, paint1 back to normal, solo1
    (line2) active unacknowledged."""
    engine, records = Engine(env.plant, t0), []
    for machine in ("press1", "weld1", "paint1", "solo1"):
        records += engine.on_state(machine, _state(MachineState.STOPPED, t0))
    records += engine.tick(t0 + 700)
    ack = Event(EventKind.ACK, t0 + 710, "ann", "on it")
    for machine in ("press1", "paint1"):
        record = engine.act(machine, STOPPED, ack)
        assert record is not None
        records.append(record)
    for machine in ("weld1", "paint1"):
        records += engine.on_state(machine, _state(MachineState.RUNNING, t0 + 720))
    records += engine.tick(t0 + 800)
    _store(env, [r for r in records if r.instance.rule.kind is STOPPED])


def test_active_alarms_history_and_line_restriction(api_env: ApiEnv) -> None:
    t0 = float(int(time.time()) - 7200)
    _scenario(api_env, t0)
    with api_env.client("admin") as admin:
        active = admin.get("/api/v1/alarms").json()["items"]
        assert {(a["machine"], a["to_state"]) for a in active} == {
            ("press1", "active_ack"), ("weld1", "cleared_unack"), ("solo1", "active_unack")}
        normal = admin.get("/api/v1/alarms", params={"state": "normal"}).json()["items"]
        assert [(a["machine"], a["by"], a["comment"]) for a in normal] == [
            ("paint1", "system", "")]
        window = {"start": iso(dt.datetime.fromtimestamp(t0, dt.UTC)),
                  "end": iso(dt.datetime.fromtimestamp(t0 + 3600, dt.UTC))}
        history = admin.get("/api/v1/alarms/history",
                            params={**window, "machine": "paint1"}).json()
        assert [i["kind"] for i in history["items"]] == ["clear", "ack", "raise"]
        assert history["items"][1]["by"] == "ann" and history["items"][1]["comment"] == "on it"
        assert history["items"][2]["time"].startswith(
            iso(dt.datetime.fromtimestamp(t0 + 300, dt.UTC))[:19])  # after_s of line1
        page = admin.get("/api/v1/alarms/history",
                         params={**window, "rule": "machine_stopped", "limit": 2}).json()
        assert len(page["items"]) == 2 and page["page"]["next_offset"] == 2
        assert admin.get("/api/v1/alarms", params={"rule": "too_hot"}).status_code == 422
    with api_env.client("line2op") as operator:
        seen = operator.get("/api/v1/alarms").json()["items"]
        assert [a["machine"] for a in seen] == ["solo1"]
        assert operator.get("/api/v1/alarms", params={"line": "line1"}).status_code == 404
        assert operator.get("/api/v1/alarms/history",
                            params={"machine": "press1"}).status_code == 404
    with api_env.client(None) as anonymous:
        assert anonymous.get("/api/v1/alarms").status_code == 401
