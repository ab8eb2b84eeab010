"""Two hours of a two-site plant in InfluxDB, written as the collector writes it: contract
payloads on their topics, classified and encoded by the collector's own code
(`shopfloor.collector.messages.classify`, `shopfloor.collector.encode.Encoder`), then
written over InfluxDB's /write. KPI and audit measurements whose writers are not in the
repository yet are written with `schema.line` and the fields docs/oee.md and
shopfloor/api/audit.py name."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import httpx

from shopfloor.collector.encode import Encoder
from shopfloor.collector.messages import ParsedMessage, classify
from shopfloor.shared import schema, topics
from shopfloor.shared.contract import AgentStatus, StatePayload, Telemetry
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.plants import example_data

MINUTE_MS = 60_000
STATE_CYCLE = ((1, "running"), (10, "stopped"), (1, "running"), (2, "idle"))
"""State codes the simulated machines step through, one step per 10 minutes."""


@dataclass(frozen=True)
class Window:
    from_ms: int
    to_ms: int


def site_plant(site: str, line: str) -> Plant:
    data = example_data()
    data["site"]["id"] = site
    data["lines"][0]["id"] = line
    for machine in data["machines"].values():
        machine["line"] = line
    return parse_plant(data)


def _collector_line(plant: Plant, encoder: Encoder, topic: str, payload: bytes,
                    at: dt.datetime) -> str:
    message = classify(plant, topic, payload)
    assert isinstance(message, ParsedMessage), message
    encoded = encoder.encode(message, at)
    assert encoded.line is not None and not encoded.bad_points
    return encoded.line


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def machine_lines(plant: Plant, encoder: Encoder, machine: str, window: Window) -> list[str]:
    """Telemetry every minute and a state change every 10 minutes."""
    site, line = plant.site.id, plant.machines[machine].line
    out = []
    for i, ts in enumerate(range(window.from_ms, window.to_ms, MINUTE_MS)):
        code = STATE_CYCLE[(i // 10) % len(STATE_CYCLE)][0]
        values = {"state": code, "total_count": 30 * i, "reject_count": i, "temperature": 40.5,
                  "product": 1, "speed_pct": 100}
        body = Telemetry(ts=_at(ts), seq=i, values=values).to_json()
        topic = topics.machine_topic(site, line, machine, topics.TELEMETRY)
        out.append(_collector_line(plant, encoder, topic, body, _at(ts)))
        if i % 10 == 0:
            state = STATE_CYCLE[(i // 10) % len(STATE_CYCLE)][1]
            body = StatePayload(ts=_at(ts), state=state, code=code, since=_at(ts),
                                reason=None if state == "running" else "jam").to_json()
            topic = topics.machine_topic(site, line, machine, topics.STATE)
            out.append(_collector_line(plant, encoder, topic, body, _at(ts)))
    return out


def rollup_lines(plant: Plant, machine: str, window: Window) -> list[str]:
    """One oee_rollup point per minute (docs/oee.md: additive aggregates)."""
    tags = {schema.TAG_SITE: plant.site.id, schema.TAG_LINE: plant.machines[machine].line,
            schema.TAG_MACHINE: machine}
    out = []
    for i, ts in enumerate(range(window.from_ms, window.to_ms, MINUTE_MS)):
        fields = {"pot_ms": 60000, "pdot_ms": 0, "unk_ms": 0, "apt_ms": 50000, "aust_ms": 0,
                  "l1_ms": 5000, "l3_ms": 5000, "l1_stopped_ms": 5000, "pq": 20.0, "sq": 1.0,
                  "pq_unattributed": 0.0, "sq_unattributed": 0.0, "pq_unplanned": 0.0,
                  "sq_unplanned": 0.0, "nrt_s": 40.0, "fpt_s": 38.0, "l5_s": 2.0, "l6_s": 0.0,
                  "fe": 1 if i % 10 == 0 else 0, "minor_stops": 1}
        out.append(schema.line(schema.OEE_ROLLUP, tags, fields, ts))
    return out


def wip_lines(plant: Plant, window: Window) -> list[str]:
    line = plant.lines[0]
    base = {schema.TAG_SITE: plant.site.id, schema.TAG_LINE: line.id}
    out = []
    for ts in range(window.from_ms, window.to_ms, MINUTE_MS):
        out.append(schema.line(schema.WIP, base, {"wip": 12.0}, ts))
        for station in line.stations[:-1]:
            out.append(schema.line(schema.WIP, {**base, "buffer": station}, {"wip": 4.0}, ts))
    return out


def audit_lines(plant: Plant, window: Window) -> list[str]:
    out = []
    for i, (who, outcome) in enumerate((("alice", "sent"), ("alice", "done"),
                                        ("bob", "refused"), ("bob", "sent"), ("bob", "failed"))):
        tags = {schema.TAG_SITE: plant.site.id, schema.TAG_LINE: plant.lines[0].id,
                schema.TAG_MACHINE: "press1", "action": "start", "outcome": outcome,
                "requested_by": who}
        fields = {"command_id": f"c{i // 2}", "point": "run", "value": "true",
                  "readback": "true", "detail": "", "late": False}
        out.append(schema.line(schema.CONTROL_AUDIT, tags, fields, window.to_ms - 60000 + i))
    return out


def status_lines(plant: Plant, encoder: Encoder, window: Window) -> list[str]:
    out = []
    for agent in plant.agents:
        body = AgentStatus(online=True, agent=agent.id, ts=_at(window.from_ms),
                           machines=agent.machines).to_json()
        topic = topics.status_topic(plant.site.id, agent.id)
        out.append(_collector_line(plant, encoder, topic, body, _at(window.from_ms)))
    return out


def plant_lines(plant: Plant, window: Window) -> list[str]:
    encoder = Encoder(plant)
    out = status_lines(plant, encoder, window)
    for machine in plant.machines:
        out += machine_lines(plant, encoder, machine, window)
        out += rollup_lines(plant, machine, window)
    return out + wip_lines(plant, window) + audit_lines(plant, window)


def write(url: str, database: str, lines: list[str]) -> None:
    httpx.post(f"{url}/query", params={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()
    r = httpx.post(f"{url}/write", params={"db": database, "precision": "ms"},
                   content="\n".join(lines).encode())
    assert r.status_code == 204, r.text
