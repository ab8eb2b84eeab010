"""How long each machine state lasted: the `state_duration` measurement.

InfluxQL cannot subtract one row's time from the next, so the downtime Pareto cannot be
computed from `machine_state` at query time. The collector knows both ends when a state
changes, so it writes the finished state's duration then: one point per finished state,
at the state's `since`, tagged with the state and its reason (bounded: a reason the plant
file does not know becomes `other`, no reason `none`). Pure: no clock, no I/O; the
batcher calls it for STATE messages only, on the network thread.

The ongoing state has no point until it ends. After a restart the previous state of each
machine comes back from InfluxDB (`recovery.recover_last_states`); when that read fails
the first change of each machine after the restart writes nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shopfloor.collector.messages import ParsedMessage
from shopfloor.shared import schema
from shopfloor.shared.contract import StatePayload
from shopfloor.shared.enums import OFFLINE_REASONS, MachineState
from shopfloor.shared.plant import Plant
from shopfloor.shared.schema import to_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenState:
    """A machine's current state: since when (ms since the epoch, event time), which
    state, and the reason as the edge sent it (None when none)."""

    since_ms: int
    state: MachineState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class EndedState:
    """A state that just ended: `reason` is already the bounded tag value."""

    since_ms: int
    state: MachineState
    reason: str
    duration_s: float


def known_reasons(plant: Plant) -> frozenset[str]:
    """Every reason a state map of the plant can give (codes and the unmapped code)."""
    reasons: set[str] = set()
    for machine in plant.machines.values():
        if machine.state is None:
            continue
        for code in (*machine.state.codes.values(), machine.state.unmapped):
            if code.reason:
                reasons.add(code.reason)
    return frozenset(reasons)


class StateDurations:
    """The open state per machine; `end` returns the state a newer one finishes. Reasons
    kept as tags: `reasons` (the plant's) and the edge's reasons for an unreadable device
    (`shared.enums.OFFLINE_REASONS`)."""

    def __init__(self, reasons: Iterable[str]) -> None:
        self._reasons = frozenset(reasons) | OFFLINE_REASONS
        self._open: dict[str, OpenState] = {}

    def recover(self, last: Mapping[str, OpenState]) -> None:
        """Seed the open states read back from InfluxDB at start (newer ones win)."""
        for machine, state in last.items():
            self.end(machine, state)

    def reason_tag(self, reason: str | None) -> str:
        """`reason` if the plant knows it, `none` when there is none, else `other`."""
        if not reason:
            return schema.REASON_NONE
        return reason if reason in self._reasons else schema.REASON_OTHER

    def end(self, machine: str, new: OpenState) -> EndedState | None:
        """Record `new` as the machine's state; the previous one if `new` ends it. A
        repeat (same since: a retained re-send) or an older since changes nothing."""
        old = self._open.get(machine)
        if old is not None and new.since_ms <= old.since_ms:
            log.debug("%s: state since %d is not later than the open one's (%d): no"
                      " duration", machine, new.since_ms, old.since_ms)
            return None
        self._open[machine] = new
        if old is None:
            return None
        return EndedState(old.since_ms, old.state, self.reason_tag(old.reason),
                          (new.since_ms - old.since_ms) / 1000)

    def observe(self, message: ParsedMessage) -> str | None:
        """The `state_duration` line a STATE message causes, if any."""
        payload = message.payload
        assert isinstance(payload, StatePayload)
        ended = self.end(message.machine, OpenState(to_ms(payload.since), payload.state,
                                                    payload.reason))
        if ended is None:
            return None
        return duration_line(message.site, message.line, message.machine, ended)


def duration_line(site: str, line: str, machine: str, ended: EndedState) -> str:
    """state_duration at the ended state's since: tags site, line, machine, state,
    reason; field duration_s (float)."""
    tags = {schema.TAG_SITE: site, schema.TAG_LINE: line, schema.TAG_MACHINE: machine,
            schema.TAG_STATE: str(ended.state), schema.TAG_REASON: ended.reason}
    text = schema.line(schema.STATE_DURATION, tags, {schema.DURATION_FIELD: ended.duration_s},
                       ended.since_ms)
    assert text is not None  # a finite float is always storable
    return text
