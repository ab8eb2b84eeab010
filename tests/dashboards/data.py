"""Two hours of a two-site plant in InfluxDB, each measurement written by its writer's
own code: telemetry, machine_state and agent_status as the collector encodes contract
payloads (`collector.messages.classify`, `collector.encode.Encoder`), state_duration as
the collector derives it from those state messages (`collector.durations`); oee_rollup,
oee and wip as the KPI engine records them (`kpi.records`, results from
`kpi.oee.compute`); control_audit as the API does (`api.audit.to_line`); alarm as the
rule engine makes and `shopfloor alarms` stores them (`alarms.engine`,
`alarms.service.transition_line`); downtime as the API does (`api.downtime.rows`:
PLC-classified jams, one starvation an operator classified, one left unclassified);
collector_stats as the collector does (`collector.stats.stats_line`). One sample of
press1 on the first site is missing (a seq gap) for the lost-samples panel."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import httpx

from shopfloor.alarms.engine import Engine, Record
from shopfloor.alarms.lifecycle import UNACKED, Event
from shopfloor.alarms.service import transition_line
from shopfloor.api.audit import AuditEntry, to_line
from shopfloor.api.downtime import events as downtime_events
from shopfloor.api.downtime import rows as downtime_rows
from shopfloor.collector.durations import OpenState, StateDurations, known_reasons
from shopfloor.collector.encode import Encoder
from shopfloor.collector.messages import ParsedMessage, classify
from shopfloor.collector.stats import Snapshot, stats_line, summarize
from shopfloor.kpi import records
from shopfloor.kpi.buckets import Agg, total
from shopfloor.kpi.calendar import ShiftCalendar, ShiftInstance
from shopfloor.kpi.oee import compute
from shopfloor.kpi.wip import BufferWip, WipResult
from shopfloor.shared import topics
from shopfloor.shared.alarm_rules import RuleKind
from shopfloor.shared.contract import AgentStatus, StatePayload, Telemetry
from shopfloor.shared.enums import EventKind, MachineState
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from shopfloor.shared.reasons import tree_of
from tests.harness.plants import example_data

MINUTE_MS = 60_000
GAP = ("press1", 30)
"""(machine, sample index) left out on the first site: one lost sample."""
STATE_CYCLE = ((1, "running", None), (10, "stopped", "jam"), (1, "running", None),
               (2, "idle", "starved"))
"""State codes (with the example plant's state and reason for each) the simulated
machines step through, one step per 10 minutes: over two hours three finished jams
(1800 s) and two finished starvations (1200 s; the third is still open at the end)."""
STATE_STEP_S = 600


@dataclass(frozen=True)
class Window:
    from_ms: int
    to_ms: int


def site_plant(site: str, line: str) -> Plant:
    data = example_data()
    data["site"]["id"] = site
    first = data["lines"][0]["id"]
    data["lines"][0]["id"] = line
    for machine in data["machines"].values():
        if machine["line"] == first:
            machine["line"] = line
    for section in ("downtime", "alarms"):  # per-line settings follow the line's new id
        per_line = data.get(section, {}).get("lines", {})
        if first in per_line:
            per_line[line] = per_line.pop(first)
    return parse_plant(data)


def _collector_line(plant: Plant, encoder: Encoder, topic: str, payload: bytes,
                    at: dt.datetime) -> str:
    message = classify(plant, topic, payload)
    assert isinstance(message, ParsedMessage), message
    encoded = encoder.encode(message, at.timestamp())
    assert encoded.line is not None and not encoded.bad_points
    return encoded.line


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def machine_lines(plant: Plant, encoder: Encoder, machine: str, window: Window,
                  gap: int | None = None) -> list[str]:
    """Telemetry every minute (but sample `gap`) and a state change every 10 minutes."""
    site, line = plant.site.id, plant.machines[machine].line
    durations = StateDurations(known_reasons(plant))
    out = []
    for i, ts in enumerate(range(window.from_ms, window.to_ms, MINUTE_MS)):
        code, state, reason = STATE_CYCLE[(i // 10) % len(STATE_CYCLE)]
        values = {"state": code, "total_count": 30 * i, "reject_count": i, "temperature": 40.5,
                  "product": 1, "speed_pct": 100}
        body = Telemetry(ts=_at(ts), seq=i, values=values).to_json()
        topic = topics.machine_topic(site, line, machine, topics.TELEMETRY)
        if i != gap:
            out.append(_collector_line(plant, encoder, topic, body, _at(ts)))
        if i % 10 == 0:
            body = StatePayload(ts=_at(ts), state=state, code=code, since=_at(ts),
                                reason=reason).to_json()
            topic = topics.machine_topic(site, line, machine, topics.STATE)
            out.append(_collector_line(plant, encoder, topic, body, _at(ts)))
            out += _duration_lines(plant, durations, topic, body)
    return out


def _duration_lines(plant: Plant, durations: StateDurations, topic: str,
                    payload: bytes) -> list[str]:
    """The state_duration line the collector writes for this state message, if any."""
    message = classify(plant, topic, payload)
    assert isinstance(message, ParsedMessage), message
    found = durations.observe(message)
    return [found] if found is not None else []


def downtime_parts(plant: Plant, machine: str, window: Window
                   ) -> list[downtime_rows.Stored]:
    """The API's downtime points for the finished stops of STATE_CYCLE: jams classified
    by their PLC code, the first starvation by an operator, the second left unclassified
    (the third is still open: no point)."""
    line = plant.machines[machine].line
    tree = tree_of(plant.downtime, line, plant.collector.minor_stop_s)
    shift_of = ShiftCalendar.of(plant).shift_name
    durations = StateDurations(known_reasons(plant))
    starvations, out = 0, []
    for i, ts in enumerate(range(window.from_ms, window.to_ms, 10 * MINUTE_MS)):
        _, state, reason = STATE_CYCLE[i % len(STATE_CYCLE)]
        ended = durations.end(machine, OpenState(ts, MachineState(state), reason))
        if ended is None or not downtime_events.qualifies(ended.state, ended.duration_s, tree):
            continue
        event = downtime_events.new_event(line, machine, ended.since_ms,
                                          ended.since_ms + round(ended.duration_s * 1000),
                                          ended.state, ended.reason, tree)
        if ended.reason == "starved":
            starvations += 1
            if starvations == 1:
                event = downtime_events.classify(event, 0, "starved", "op1", "no coils", tree)
        out += downtime_rows.changes(event, tree, [], shift_of)
    return out


ALARM_ACK_BY = "op1"
STOPPED = RuleKind.MACHINE_STOPPED


def alarm_records(plant: Plant, window: Window) -> list[Record]:
    """The rule engine's transitions (machine_stopped) for the STATE_CYCLE states of every
    machine: each stop and starvation raises after the line's on-delay; op1 acknowledges
    the first alarm of every machine at the first step after it was raised (never at the
    raise's instant: InfluxDB would keep one of two transitions with the same tags and
    time)."""
    engine, out = Engine(plant, window.from_ms / 1000), []
    for i, ts in enumerate(range(window.from_ms, window.to_ms, 10 * MINUTE_MS)):
        _, state, reason = STATE_CYCLE[i % len(STATE_CYCLE)]
        at = _at(ts)
        for machine in plant.machines:
            out += engine.tick(ts / 1000)
            out += engine.on_state(machine, StatePayload(ts=at, state=MachineState(state),
                                                         reason=reason, since=at))
            alarm = engine.instances[machine, STOPPED].alarm
            mine = [r.transition for r in out
                    if r.instance.machine == machine and r.instance.rule.kind is STOPPED]
            if alarm.state in UNACKED and not any(t.kind is EventKind.ACK for t in mine) \
                    and any(t.kind is EventKind.RAISE and round(t.at * 1000) < ts for t in mine):
                acked = engine.act(machine, STOPPED,
                                   Event(EventKind.ACK, ts / 1000, ALARM_ACK_BY, "seen"))
                out += [acked] if acked else []
    out += engine.tick(window.to_ms / 1000)
    return [r for r in out if r.instance.rule.kind is STOPPED]  # agents are not fed


def alarm_lines(plant: Plant, window: Window) -> list[str]:
    """As `shopfloor alarms` stores them (with the shift each falls in)."""
    shift_name = ShiftCalendar.of(plant).shift_name
    lines = [transition_line(plant.site.id, r, shift_name(round(r.transition.at * 1000)))
             for r in alarm_records(plant, window)]
    return [line for line in lines if line]


def minute_agg(i: int) -> Agg:
    """One minute of a machine: 50 s running, 5 s unplanned stop, 5 s minor stops; parts
    in fractions, as a rollup holds them (a counter pair cut by a minute boundary is
    split in proportion: docs/oee.md)."""
    return Agg(pot_ms=60000, apt_ms=50000, l1_ms=5000, l1_stopped_ms=5000, l3_ms=5000,
               pq=20.4, sq=0.7, nrt_s=40.0, fpt_s=38.0, l5_s=2.0,
               fe=1 if i % 10 == 0 else 0, minor_stops=1)


def kpi_lines(plant: Plant, machine: str, window: Window) -> list[str]:
    """Per-minute rollups, and the current-shift snapshot the collector keeps fresh."""
    site, line = plant.site.id, plant.machines[machine].line
    out: list[str] = []
    aggs = []
    for i, ts in enumerate(range(window.from_ms, window.to_ms, MINUTE_MS)):
        aggs.append(minute_agg(i))
        out += records.rollup_lines(site, line, machine, ts, aggs[-1], final=True)
    shift = ShiftInstance("early", dt.date.today(), window.from_ms, window.to_ms + 3600000)
    out.append(records.oee_line(site, line, machine, "shift", window.to_ms - 30000,
                                window.from_ms, window.to_ms, compute(total(aggs)), shift))
    return out


def wip_lines(plant: Plant, window: Window) -> list[str]:
    line = plant.lines[0]
    buffers = tuple(BufferWip(up, down, 4, 1, 200, 0, 8, False)
                    for up, down in zip(line.stations, line.stations[1:], strict=False))
    out = []
    for ts in range(window.from_ms, window.to_ms, MINUTE_MS):
        result = WipResult(line.id, ts - 3600000, ts, window.from_ms, True, buffers,
                           wip=12, mean_wip=11.5, throughput_per_h=1140.0,
                           lead_time_s=36.3, little_holds=True, drift=False, inflow=1200,
                           outflow_good=1140)
        out += records.wip_lines(plant.site.id, "rolling", ts, result)
    return out


def audit_lines(plant: Plant, window: Window) -> list[str]:
    out = []
    for i, (who, outcome) in enumerate((("alice", "sent"), ("alice", "done"),
                                        ("bob", "refused"), ("bob", "sent"), ("bob", "failed"))):
        entry = AuditEntry(plant.site.id, plant.lines[0].id, "press1", "start", outcome, who,
                           command_id=f"c{i // 2}", point="run", value=True, readback=True)
        out.append(to_line(entry, (window.to_ms - 60000 + i) * 1_000_000))
    return out


STATS_PERIOD_MS = 10_000  # the collector's default stats_period_s


STATS_LAGS = [0.2 + 0.01 * i for i in range(60)]
"""Lags (s) of the samples of every stats period."""


def stats_snapshots(window: Window) -> list[tuple[int, Snapshot]]:
    """(ts, snapshot) every 10 s: counters growing since start, a restart (counters back
    to 0) half-way, three dead letters a minute."""
    out = []
    restart_ms = window.from_ms + (window.to_ms - window.from_ms) // 2
    for ts in range(window.from_ms, window.to_ms, STATS_PERIOD_MS):
        n = (ts - (restart_ms if ts >= restart_ms else window.from_ms)) // STATS_PERIOD_MS
        out.append((ts, Snapshot(received=80 * n, written=470 * n,
                                 dead_letters={"payload": n // 3, "unknown_machine": n // 6},
                                 lost=n // 20, duplicates=n // 10, late=n // 30, pending=3,
                                 lag=summarize(STATS_LAGS))))
    return out


def collector_stats_lines(plant: Plant, window: Window) -> list[str]:
    return [stats_line(plant.site.id, plant.collector.client_id, snapshot, ts)
            for ts, snapshot in stats_snapshots(window)]


QUEUE_DEPTHS = (0, 0, 1200, 5400, 2100, 0)
"""Outbox depth an agent reports, one status every 10 minutes (an outage and its drain)."""


def status_lines(plant: Plant, encoder: Encoder, window: Window) -> list[str]:
    out = []
    for agent in plant.agents:
        topic = topics.status_topic(plant.site.id, agent.id)
        for k, depth in enumerate(QUEUE_DEPTHS):
            at = _at(window.from_ms + k * 10 * MINUTE_MS)
            body = AgentStatus(online=True, agent=agent.id, ts=at, machines=agent.machines,
                               queue_depth=depth).to_json()
            out.append(_collector_line(plant, encoder, topic, body, at))
    return out


def plant_lines(plant: Plant, window: Window, with_gap: bool) -> list[str]:
    """Everything but the audit (nanosecond timestamps: see audit_lines)."""
    encoder = Encoder(plant)
    out = status_lines(plant, encoder, window)
    for machine in plant.machines:
        gap = GAP[1] if with_gap and machine == GAP[0] else None
        out += machine_lines(plant, encoder, machine, window, gap)
        out += kpi_lines(plant, machine, window)
        out += [downtime_rows.to_line(plant.site.id, s)
                for s in downtime_parts(plant, machine, window)]
    return (out + wip_lines(plant, window) + collector_stats_lines(plant, window)
            + alarm_lines(plant, window))


def write(url: str, database: str, lines: list[str], precision: str = "ms") -> None:
    httpx.post(f"{url}/query", params={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()
    r = httpx.post(f"{url}/write", params={"db": database, "precision": precision},
                   content="\n".join(lines).encode())
    assert r.status_code == 204, r.text
