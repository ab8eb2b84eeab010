"""The live view: each machine's current state, last values and its agent's online flag,
kept current from the retained MQTT topics (state, status) and the telemetry stream.

Pure bookkeeping: `apply(topic, payload)` is called by the MQTT link for every message;
routes read snapshots. A lock keeps the paho thread and the event loop consistent."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from shopfloor.shared import topics
from shopfloor.shared.admission import Refusal, TimeAdmission, known_values, point_names
from shopfloor.shared.contract import AgentStatus, PointValue, StatePayload, Telemetry, parse
from shopfloor.shared.errors import ContractError
from shopfloor.shared.plant import Plant
from shopfloor.shared.schema import to_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MachineLive:
    """A snapshot of one machine. `values` holds the last good value of every point seen;
    `quality` the points whose last sample was bad."""

    state: StatePayload | None = None
    values: dict[str, PointValue] = field(default_factory=dict)
    quality: dict[str, str] = field(default_factory=dict)
    telemetry_ts: dt.datetime | None = None
    seq: int | None = None
    kpi: dict[str, Any] | None = None  # the collector's retained KPI message (kpi topic)


class LiveView:
    """Current view of every machine of the plant, fed message by message."""

    def __init__(self, plant: Plant, clock: Callable[[], float] = time.time) -> None:
        self._plant = plant
        self._clock = clock  # wall clock (s since the epoch) for the admission rule
        self._admission = TimeAdmission.of(plant)
        self._points = point_names(plant)
        self._lock = threading.Lock()
        self._machines: dict[str, MachineLive] = {m: MachineLive() for m in plant.machines}
        self._agents: dict[str, AgentStatus] = {}
        self._agent_of = {m: a.id for a in plant.agents for m in a.machines}
        self.rejected = 0  # messages that did not parse or did not belong to the plant
        self.refused: dict[Refusal, int] = dict.fromkeys(Refusal, 0)  # admission: time
        self.unknown_values = 0  # value keys that are not points of their machine (dropped)
        self._listeners: list[Callable[[str], None]] = []

    def listen(self, listener: Callable[[str], None]) -> None:
        """Call `listener(machine)` (on the MQTT thread) after a machine's state or KPI
        changed: how the operator page's stream learns of changes without polling."""
        self._listeners.append(listener)

    def _changed(self, machine: str) -> None:
        for listener in self._listeners:
            listener(machine)

    def apply(self, topic: str, payload: bytes) -> bool:
        """Take one message; False (and counted) when it is malformed or foreign."""
        try:
            return self._apply(topic, payload)
        except ContractError as exc:
            self.rejected += 1
            log.debug("live view: ignored %s: %s", topic, exc)
            return False

    def _apply(self, topic: str, payload: bytes) -> bool:
        agent = _status_agent(topic, self._plant.site.id)
        if agent is not None:
            if not payload:  # a cleared retained status
                return False
            status: AgentStatus = parse(AgentStatus, payload)
            with self._lock:
                self._agents[agent] = status
            for machine_id in [m for m, a in self._agent_of.items() if a == agent]:
                self._changed(machine_id)
            return True
        where = topics.parse_machine_topic(topic)
        if where is None or where.site != self._plant.site.id:
            return False
        machine = self._plant.machines.get(where.machine)
        if machine is None or machine.line != where.line or not payload:
            return False
        if where.kind == topics.STATE:
            state: StatePayload = parse(StatePayload, payload)
            refused = self._admission.ahead(to_ms(state.since), int(self._clock() * 1000),
                                            "since")
            if refused is not None:  # a state cannot begin in the future (admission)
                self.refused[refused.reason] += 1
                log.debug("live view: %s state refused: %s", where.machine, refused.detail)
                return False
            self._set_state(where.machine, state)
            self._changed(where.machine)
            return True
        if where.kind == topics.KPI:
            self._set_kpi(where.machine, payload)
            self._changed(where.machine)
            return True
        if where.kind == topics.TELEMETRY:
            self._merge_telemetry(where.machine, parse(Telemetry, payload))
            return True
        return False

    def _set_state(self, machine: str, state: StatePayload) -> None:
        with self._lock:
            self._machines[machine] = replace(self._machines[machine], state=state)

    def _set_kpi(self, machine: str, payload: bytes) -> None:
        try:
            kpi = json.loads(payload)
        except ValueError as exc:
            raise ContractError(f"KPI message is not JSON: {exc}") from None
        if not isinstance(kpi, dict) or kpi.get("machine") != machine:
            raise ContractError("KPI message is not an object for this machine")
        with self._lock:
            self._machines[machine] = replace(self._machines[machine], kpi=kpi)

    def _merge_telemetry(self, machine: str, sample: Telemetry) -> None:
        """Newest sample wins, within the admission rule (shared.admission): a sample
        stamped far ahead would otherwise hide every later one; unknown keys would grow
        the view without bound."""
        refused = self._admission.refuse(to_ms(sample.ts), int(self._clock() * 1000))
        if refused is not None:
            self.refused[refused.reason] += 1
            log.debug("live view: %s telemetry refused: %s", machine, refused.detail)
            return
        points = self._points[machine]
        values, unknown = known_values(sample.values, points)
        quality, unknown_quality = known_values(sample.quality, points)
        if unknown or unknown_quality:
            self.unknown_values += unknown + unknown_quality
        with self._lock:
            current = self._machines[machine]
            if current.telemetry_ts is not None and sample.ts < current.telemetry_ts:
                return  # an older sample (redelivery) must not overwrite newer values
            merged = {**current.values, **values}
            bad = {k: v for k, v in current.quality.items() if k not in values}
            bad.update(quality)
            self._machines[machine] = replace(
                current, values=merged, quality=bad, telemetry_ts=sample.ts, seq=sample.seq
            )

    def note_write(self, machine: str, point: str, value: PointValue) -> None:
        """Record a value the edge confirmed writing (read-back), ahead of telemetry."""
        with self._lock:
            current = self._machines[machine]
            self._machines[machine] = replace(current, values={**current.values, point: value})

    def machine(self, machine: str) -> MachineLive:
        with self._lock:
            return self._machines[machine]

    def agent_id(self, machine: str) -> str | None:
        return self._agent_of.get(machine)

    def agent(self, agent_id: str) -> AgentStatus | None:
        with self._lock:
            return self._agents.get(agent_id)

    def online(self, machine: str) -> bool | None:
        """The machine's agent's last birth/will; None when nothing was heard yet."""
        agent_id = self._agent_of.get(machine)
        status = self.agent(agent_id) if agent_id else None
        return None if status is None else status.online

    def in_maintenance(self, machine: str) -> bool:
        """Maintenance mode: the machine's `control.maintenance` point when it has one
        (last telemetry or confirmed write), else a planned stop with reason maintenance."""
        point = self._plant.machines[machine].control.maintenance
        live = self.machine(machine)
        if point is not None:
            return bool(live.values.get(point, False))
        return live.state is not None and live.state.maintenance


def _status_agent(topic: str, site: str) -> str | None:
    """The agent id of an edge status topic of this site, else None."""
    parts = topic.split("/")
    prefix = f"{topics.ROOT}/{site}/edge/"
    if not topic.startswith(prefix) or len(parts) != 6 or parts[5] != topics.STATUS:
        return None
    return parts[4]
