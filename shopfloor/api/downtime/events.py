"""Downtime events, pure: built from finished states (`state_duration`) and the machine's
current state, merged with what is stored in the `downtime` measurement, split and
classified. No clock, no I/O.

An event is a `stopped`, `idle` or `offline` episode at least the line's threshold long.
Its id is the machine and its start (`press1:1764720000000`): the same telemetry gives
the same ids whatever the arrival order or restarts. Its time is cut into parts (one
until someone splits it), each with a reason code of the line's tree or none
(unclassified)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from shopfloor.shared.enums import MachineState
from shopfloor.shared.reasons import DOWNTIME_STATES as DOWNTIME_STATES
from shopfloor.shared.reasons import ReasonTree
from shopfloor.shared.reasons import event_id as event_id
from shopfloor.shared.reasons import qualifies as qualifies
from shopfloor.shared.schema import REASON_NONE

PLC_BY = "plc"  # `by` of a part classified by its PLC reason code


class EventError(ValueError):
    """A split or classification that does not fit the event (message says why)."""


@dataclass(frozen=True, slots=True)
class Part:
    """From `start_ms` to the next part's start (the last: to the event's end)."""

    start_ms: int
    reason: str | None = None  # a code of the line's tree; None: unclassified
    by: str = ""  # the API key's name, or `plc`
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    line: str
    machine: str
    start_ms: int
    end_ms: int | None  # None while the event lasts
    state: MachineState
    plc_reason: str | None
    parts: tuple[Part, ...]

    @property
    def classified(self) -> bool:
        return all(p.reason is not None for p in self.parts)

    def part_end(self, index: int) -> int | None:
        if index + 1 < len(self.parts):
            return self.parts[index + 1].start_ms
        return self.end_ms

    def duration_s(self, now_ms: int) -> float:
        return ((self.end_ms if self.end_ms is not None else now_ms) - self.start_ms) / 1000


def parse_id(text: str) -> tuple[str, int] | None:
    """(machine, start_ms) of an event id, None when it is not one."""
    machine, sep, start = text.rpartition(":")
    if not sep or not machine or not start.isdigit() or len(start) > 16:
        return None
    return machine, int(start)


def initial_parts(start_ms: int, plc_reason: str | None, tree: ReasonTree) -> tuple[Part, ...]:
    """One part: classified by the PLC reason's mapping, else unclassified."""
    reason = tree.initial(plc_reason)
    if reason is None:
        return (Part(start_ms),)
    return (Part(start_ms, reason.code, PLC_BY),)


def new_event(line: str, machine: str, start_ms: int, end_ms: int | None,
              state: MachineState, plc_reason: str | None, tree: ReasonTree) -> Event:
    plc = None if plc_reason in (None, "", REASON_NONE) else plc_reason
    return Event(event_id(machine, start_ms), line, machine, start_ms, end_ms, state, plc,
                 initial_parts(start_ms, plc, tree))


def with_parts(event: Event, parts: Iterable[Part]) -> Event:
    """`event` with stored parts (sorted; the first must start at the event's start)."""
    ordered = tuple(sorted(parts, key=lambda p: p.start_ms))
    if not ordered or ordered[0].start_ms != event.start_ms:
        return event
    return replace(event, parts=ordered)


def split(event: Event, at_ms: Sequence[int], now_ms: int) -> Event:
    """Cut the event at each instant (strictly inside it; an open event: before now).
    Each new part keeps the reason of the part it was cut from."""
    end = event.end_ms if event.end_ms is not None else now_ms
    cuts = sorted(set(at_ms))
    for t in cuts:
        if not event.start_ms < t < end:
            raise EventError(f"split instant {t} ms is not inside the event "
                             f"({event.start_ms}..{end} ms)")
        if any(p.start_ms == t for p in event.parts):
            raise EventError(f"the event is already split at {t} ms")
    parts = list(event.parts)
    for t in cuts:
        source = max((p for p in parts if p.start_ms < t), key=lambda p: p.start_ms)
        parts.append(replace(source, start_ms=t))
    return replace(event, parts=tuple(sorted(parts, key=lambda p: p.start_ms)))


def classify(event: Event, index: int, reason: str, by: str, comment: str,
             tree: ReasonTree) -> Event:
    """Part `index` gets `reason` (a code of the line's tree)."""
    if reason not in tree.reasons:
        raise EventError(f"unknown reason {reason!r} for line {event.line} (known: "
                         f"{sorted(tree.reasons)})")
    if not 0 <= index < len(event.parts):
        raise EventError(f"the event has {len(event.parts)} part(s); no part {index}")
    parts = list(event.parts)
    parts[index] = Part(parts[index].start_ms, reason, by, comment)
    return replace(event, parts=tuple(parts))


def merge_open(finished: Iterable[Event], current: Iterable[Event]) -> list[Event]:
    """Finished events and the open ones, one per id (the finished one wins), newest first."""
    by_id = {e.id: e for e in current}
    by_id.update({e.id: e for e in finished})
    return sorted(by_id.values(), key=lambda e: (e.start_ms, e.machine), reverse=True)
