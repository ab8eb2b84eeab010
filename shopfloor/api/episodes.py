"""State changes -> downtime episodes, a pure function of the stored changes.

An episode is a maximal run of one (state, reason) that is not `running`, cut to the
window. The state in force when the window opens comes from the last change before it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shopfloor.shared.enums import MachineState


@dataclass(frozen=True, slots=True)
class Change:
    """A machine entered `state` (with `reason`) at `at`."""

    at: dt.datetime
    state: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Episode:
    start: dt.datetime
    end: dt.datetime
    state: str
    reason: str | None
    ongoing: bool  # still in this state at the end of the window (cut by it)

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


def downtime(before: Change | None, changes: list[Change], start: dt.datetime,
             end: dt.datetime) -> list[Episode]:
    """Downtime episodes in [start, end). `changes` lie inside the window; `before` is the
    last change before it (None when unknown: time before the first change is left out)."""
    timeline = sorted(changes, key=lambda c: c.at)
    if before is not None:
        timeline.insert(0, Change(start, before.state, before.reason))
    merged = _merge(timeline)
    episodes = []
    for i, change in enumerate(merged):
        if change.state == MachineState.RUNNING.value:
            continue
        stop = merged[i + 1].at if i + 1 < len(merged) else end
        begin = max(change.at, start)
        if stop > begin:
            episodes.append(Episode(begin, stop, change.state, change.reason,
                                    ongoing=i + 1 == len(merged)))
    return episodes


def _merge(timeline: list[Change]) -> list[Change]:
    """Drop changes that repeat the previous (state, reason)."""
    out: list[Change] = []
    for change in timeline:
        if out and (out[-1].state, out[-1].reason) == (change.state, change.reason):
            continue
        out.append(change)
    return out
