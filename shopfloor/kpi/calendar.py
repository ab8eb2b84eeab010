"""Shift calendar: shifts declared in local time with an IANA zone -> UTC shift instances.

An instance belongs to the production date (local) on which it starts; its duration is a
UTC difference (a night shift across a DST change lasts 7 or 9 hours). A local time that
does not exist (spring forward) moves forward by the length of the gap (02:30 -> 03:30);
an ambiguous one (fall back) takes its first occurrence (PEP 495 `fold=0`). Breaks are
planned downtime (PDOT) inside their shift. Times are UTC epoch milliseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shopfloor.shared import schema
from shopfloor.shared.plant import ALL_DAYS, Calendar, Plant, Shift

_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """One occurrence of a shift: [start_ms, end_ms) UTC, breaks as [start, end) pairs."""

    name: str
    date: dt.date
    start_ms: int
    end_ms: int
    breaks: tuple[tuple[int, int], ...] = ()

    @property
    def key(self) -> str:
        """`2026-11-25/early`: the instance's name in records and on the command line."""
        return f"{self.date.isoformat()}/{self.name}"


@dataclass(frozen=True, slots=True)
class PlannedSpan:
    """A stretch of planned operation time (POT); `is_break` marks calendar PDOT."""

    start_ms: int
    end_ms: int
    is_break: bool
    shift: ShiftInstance | None


def local_to_ms(date: dt.date, time: dt.time, zone: ZoneInfo) -> int:
    """UTC ms of a local wall-clock time (nonexistent: forward; ambiguous: first)."""
    local = dt.datetime.combine(date, time.replace(tzinfo=None, fold=0), tzinfo=zone)
    # Round-trip through UTC so that a nonexistent time lands on its real instant.
    return schema.to_ms(local.astimezone(dt.UTC))


def ms_to_utc(ms: int) -> dt.datetime:
    return schema.EPOCH + ms * schema.ONE_MS


def instance(shift: Shift, date: dt.date, zone: ZoneInfo) -> ShiftInstance:
    """The instance of `shift` that starts on local `date`."""
    start = local_to_ms(date, shift.start, zone)
    end_date = date + _DAY if shift.end <= shift.start else date
    end = local_to_ms(end_date, shift.end, zone)
    breaks = []
    for brk in shift.breaks:
        b_date = date + _DAY if brk.start < shift.start else date
        b_start = local_to_ms(b_date, brk.start, zone)
        b_end_date = b_date + _DAY if brk.end <= brk.start else b_date
        b_end = local_to_ms(b_end_date, brk.end, zone)
        lo, hi = max(b_start, start), min(b_end, end)
        if lo < hi:
            breaks.append((lo, hi))
    return ShiftInstance(shift.name, date, start, end, tuple(sorted(breaks)))


class ShiftCalendar:
    """The plant's shifts in their zone. With no shifts declared every instant is planned
    (a 24/7 plant); such time belongs to no shift instance."""

    def __init__(self, calendar: Calendar, timezone: str) -> None:
        self.shifts = list(calendar.shifts)
        self.zone = ZoneInfo(timezone)

    @staticmethod
    def of(plant: Plant) -> ShiftCalendar:
        return ShiftCalendar(plant.calendar, plant.timezone)

    def instances(self, start_ms: int, end_ms: int) -> list[ShiftInstance]:
        """Shift instances overlapping [start_ms, end_ms), by start time."""
        first = ms_to_utc(start_ms).astimezone(self.zone).date() - _DAY
        last = ms_to_utc(end_ms).astimezone(self.zone).date()
        out = []
        day = first
        while day <= last:
            weekday = ALL_DAYS[day.weekday()]
            for shift in self.shifts:
                if weekday in shift.days:
                    inst = instance(shift, day, self.zone)
                    if inst.start_ms < end_ms and inst.end_ms > start_ms:
                        out.append(inst)
            day += _DAY
        return sorted(out, key=lambda i: (i.start_ms, i.name))

    def find(self, name: str, date: dt.date) -> ShiftInstance | None:
        """The instance of shift `name` on production date `date`, if scheduled."""
        for shift in self.shifts:
            if shift.name == name and ALL_DAYS[date.weekday()] in shift.days:
                return instance(shift, date, self.zone)
        return None

    def latest(self, now_ms: int, name: str | None = None) -> ShiftInstance | None:
        """The instance (of shift `name`, or of any shift) running at `now_ms`, else the
        one that started last within the week before; None when there is none."""
        week_ms = 7 * 24 * 3600 * 1000
        started = [i for i in self.instances(now_ms - week_ms, now_ms + 1)
                   if i.start_ms <= now_ms and (name is None or i.name == name)]
        return max(started, key=lambda i: i.start_ms) if started else None

    def at(self, ts_ms: int) -> ShiftInstance | None:
        """The shift instance running at `ts_ms` (the earliest-starting if several)."""
        found = self.instances(ts_ms, ts_ms + 1)
        return found[0] if found else None

    def shift_name(self, ts_ms: int) -> str:
        """The name of the shift running at `ts_ms`, "" outside every shift: the `shift`
        tag of the points counted per shift (downtime parts, alarm transitions)."""
        found = self.at(ts_ms)
        return found.name if found else ""

    def planned(self, start_ms: int, end_ms: int) -> list[PlannedSpan]:
        """POT inside [start_ms, end_ms) as disjoint spans, breaks marked."""
        if not self.shifts:
            return [PlannedSpan(start_ms, end_ms, False, None)] if start_ms < end_ms else []
        insts = self.instances(start_ms, end_ms)
        cuts = {start_ms, end_ms}
        for inst in insts:
            cuts.update((inst.start_ms, inst.end_ms))
            cuts.update(t for brk in inst.breaks for t in brk)
        points = sorted(t for t in cuts if start_ms <= t <= end_ms)
        spans: list[PlannedSpan] = []
        for lo, hi in zip(points, points[1:], strict=False):
            covering = [i for i in insts if i.start_ms <= lo and hi <= i.end_ms]
            if not covering:
                continue
            is_break = any(b[0] <= lo and hi <= b[1] for i in covering for b in i.breaks)
            _append(spans, PlannedSpan(lo, hi, is_break, covering[0]))
        return spans


def _append(spans: list[PlannedSpan], span: PlannedSpan) -> None:
    """Append, merging with the previous span when contiguous and alike."""
    if spans:
        prev = spans[-1]
        if prev.end_ms == span.start_ms and (prev.is_break, prev.shift) == (
            span.is_break, span.shift):
            spans[-1] = PlannedSpan(prev.start_ms, span.end_ms, prev.is_break, prev.shift)
            return
    spans.append(span)
