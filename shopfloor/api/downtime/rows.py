"""Events <-> the `downtime` measurement (docs/influxdb-schema.md), pure.

One point per part, at the part's start: tags site, line, machine, reason (a code of the
tree or `unclassified`), category, loss, shift (the shift the part starts in, none outside
shifts: "per shift" panels group by it); fields event (the id), end_ms (0 while open),
duration_s (0 while open), active, by, comment, state, plc_reason.

The reason is a tag (dashboards sum `duration_s` GROUP BY reason), so a new reason is a
new series: the part's previous point is overwritten with `active=false, duration_s=0`
(a tombstone) rather than deleted, which works on every InfluxDB without DELETE rights.
Sums over `duration_s` are therefore right without filtering; lists filter `active`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shopfloor.api.downtime.events import Event, Part
from shopfloor.shared import schema
from shopfloor.shared.reasons import UNCLASSIFIED, ReasonTree


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored part point (`ts_ms` is the part's start)."""

    ts_ms: int
    line: str
    machine: str
    reason: str
    category: str
    loss: str
    event: str
    end_ms: int
    duration_s: float
    active: bool
    by: str = ""
    comment: str = ""
    state: str = ""
    plc_reason: str = ""
    shift: str = ""

    @property
    def key(self) -> tuple[int, str, str, str, str]:
        """What identifies the point (with site, line and machine)."""
        return self.ts_ms, self.reason, self.category, self.loss, self.shift

    def part(self) -> Part:
        reason = None if self.reason == UNCLASSIFIED else self.reason
        return Part(self.ts_ms, reason, self.by, self.comment)


ShiftOf = Callable[[int], str]
"""The name of the shift an instant (ms) falls in, "" outside every shift."""


def no_shift(_ms: int) -> str:
    return ""


def desired(event: Event, tree: ReasonTree, shift_of: ShiftOf = no_shift) -> list[Stored]:
    """The points that describe `event` now."""
    out = []
    for i, part in enumerate(event.parts):
        end = event.part_end(i)
        found = tree.reasons.get(part.reason) if part.reason else None
        out.append(Stored(
            ts_ms=part.start_ms, line=event.line, machine=event.machine,
            reason=found.code if found else UNCLASSIFIED,
            category=found.category if found else UNCLASSIFIED,
            loss=str(found.loss) if found else UNCLASSIFIED,
            event=event.id, end_ms=end or 0,
            duration_s=(end - part.start_ms) / 1000 if event.end_ms is not None and end else 0.0,
            active=True, by=part.by, comment=part.comment, state=str(event.state),
            plc_reason=event.plc_reason or "", shift=shift_of(part.start_ms)))
    return out


def changes(event: Event, tree: ReasonTree, stored: Iterable[Stored],
            shift_of: ShiftOf = no_shift) -> list[Stored]:
    """Points to write so that the store holds `event`: new or changed parts, and a
    tombstone for every active point no longer wanted. Empty when nothing changed."""
    want = desired(event, tree, shift_of)
    have = [s for s in stored if s.event == event.id and s.active]
    keys = {w.key for w in want}
    out = [w for w in want if w not in have]
    out += [_tombstone(s) for s in have if s.key not in keys]
    return out


def _tombstone(s: Stored) -> Stored:
    return Stored(s.ts_ms, s.line, s.machine, s.reason, s.category, s.loss, s.event,
                  s.end_ms, 0.0, False, s.by, s.comment, s.state, s.plc_reason, s.shift)


def to_line(site: str, s: Stored) -> str:
    tags = {schema.TAG_SITE: site, schema.TAG_LINE: s.line, schema.TAG_MACHINE: s.machine,
            schema.TAG_REASON: s.reason, schema.TAG_CATEGORY: s.category,
            schema.TAG_LOSS: s.loss, schema.TAG_SHIFT: s.shift}
    fields: dict[str, object] = {
        "event": s.event, "end_ms": s.end_ms, schema.DURATION_FIELD: float(s.duration_s),
        "active": s.active, "by": s.by, "comment": s.comment, "state": s.state,
        "plc_reason": s.plc_reason}
    text = schema.line(schema.DOWNTIME, tags, fields, s.ts_ms)
    assert text is not None  # always has fields
    return text


def from_row(row: dict[str, Any]) -> Stored | None:
    """A query row (tags and fields flattened, epoch-ms time) back; None if incomplete."""
    try:
        return Stored(
            ts_ms=int(row["time"]), line=str(row["line"]), machine=str(row["machine"]),
            reason=str(row["reason"]), category=str(row.get("category") or UNCLASSIFIED),
            loss=str(row.get("loss") or UNCLASSIFIED), event=str(row["event"]),
            end_ms=int(row.get("end_ms") or 0), duration_s=float(row.get("duration_s") or 0),
            active=bool(row.get("active")), by=str(row.get("by") or ""),
            comment=str(row.get("comment") or ""), state=str(row.get("state") or ""),
            plc_reason=str(row.get("plc_reason") or ""), shift=str(row.get("shift") or ""))
    except (KeyError, TypeError, ValueError):
        return None


def parts_by_event(stored: Iterable[Stored]) -> dict[str, list[Part]]:
    out: dict[str, list[Part]] = {}
    for s in stored:
        if s.active:
            out.setdefault(s.event, []).append(s.part())
    return out
