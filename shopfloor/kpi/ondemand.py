"""KPIs for any window, on demand, from what InfluxDB holds: final per-minute rollups
where they cover whole minutes, raw telemetry for the rest (window edges, minutes without
a final rollup). Used by `shopfloor oee` and by the API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shopfloor.kpi.aggregate import Bucket, aggregate, context_ms
from shopfloor.kpi.buckets import Agg, total
from shopfloor.kpi.calendar import ShiftCalendar, ShiftInstance
from shopfloor.kpi.classified import Classified
from shopfloor.kpi.errors import KpiError
from shopfloor.kpi.model import MachineSpec, Settings
from shopfloor.kpi.oee import OeeResult, compute
from shopfloor.kpi.store import MINUTE_MS, KpiStore
from shopfloor.kpi.wip import Anchor, WipResult
from shopfloor.kpi.wip import compute_wip as wip_from_counts
from shopfloor.kpi.workorders import OrderProgress, progress
from shopfloor.shared import schema
from shopfloor.shared.plant import Plant


def to_ms(when: dt.datetime | int) -> int:
    """ms since the epoch of a time given as ms already or as an aware datetime."""
    if isinstance(when, int):
        return when
    if when.tzinfo is None:
        raise KpiError(f"{when.isoformat()} has no time zone; give UTC or an offset")
    return schema.to_ms(when)


@dataclass(frozen=True, slots=True)
class OeeReport:
    """OEE of one machine over [start_ms, end_ms); `rollup_minutes` of it came from
    stored rollups, the rest from raw telemetry."""

    machine: str
    line: str
    start_ms: int
    end_ms: int
    result: OeeResult
    rollup_minutes: int
    shift: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["result"] = self.result.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class WipReport:
    wip: WipResult
    orders: tuple[OrderProgress, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"wip": self.wip.as_dict(), "orders": [o.as_dict() for o in self.orders]}


def _minutes(lo: int, hi: int) -> tuple[int, int]:
    a = -(-lo // MINUTE_MS) * MINUTE_MS
    b = hi // MINUTE_MS * MINUTE_MS
    return (a, b) if a < b else (lo, lo)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] < r[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _touched(spans: Sequence[Classified], a: int, b: int) -> set[int]:
    """Minute starts in [a, b) that a classified span overlaps."""
    out: set[int] = set()
    for span in spans:
        first = max(a, span.start_ms // MINUTE_MS * MINUTE_MS)
        out.update(range(first, min(b, span.end_ms), MINUTE_MS))
    return out


class Engine:
    """On-demand KPIs of one plant over its store."""

    def __init__(self, plant: Plant, store: KpiStore, settings: Settings | None = None,
                 use_rollups: bool = True):
        self.plant = plant
        self.store = store
        self.settings = settings or Settings.of(plant)
        self.calendar = ShiftCalendar.of(plant)
        self.use_rollups = use_rollups  # False: everything from raw telemetry

    def raw(self, spec: MachineSpec, lo: int, hi: int, bucket_ms: int | None = None,
            cuts: Iterable[int] = (), classified: Sequence[Classified] = ()) -> list[Bucket]:
        """Buckets of [lo, hi) computed from raw telemetry (with context around it)."""
        margin = context_ms(spec, self.settings)
        samples = self.store.samples(spec, lo - margin, hi + margin)
        return aggregate(spec, samples, self.calendar, lo, hi, bucket_ms, self.settings,
                         cuts=cuts, classified=classified)

    def total(self, spec: MachineSpec, lo: int, hi: int) -> tuple[Agg, int]:
        """The aggregate of [lo, hi) and how many whole minutes came from rollups. Minutes
        that downtime classified planned or setup touches are recomputed from raw
        telemetry: a rollup written before the classification does not know it."""
        a, b = _minutes(lo, hi) if self.use_rollups else (lo, lo)
        classified = self.store.classified(spec.id, lo, hi).get(spec.id, [])
        dirty = _touched(classified, a, b)
        used, minutes = Agg(), 0
        holes = [(lo, a), (b, hi)]
        if a < b:
            summed, n = self.store.rollup_sum(spec.id, a, b) if not dirty else (Agg(), -1)
            if n == (b - a) // MINUTE_MS:
                used, minutes = summed, n
            else:
                have = {t: x for t, x in self.store.rollups(spec.id, a, b).items()
                        if t not in dirty}
                used = total(list(have.values()))
                minutes = len(have)
                holes += [(t, t + MINUTE_MS) for t in range(a, b, MINUTE_MS) if t not in have]
        for r_lo, r_hi in _merge(holes):
            used.add(total([x.agg for x in self.raw(spec, r_lo, r_hi,
                                                    classified=classified)]))
        return used, minutes

    def buckets(self, spec: MachineSpec, lo: int, hi: int, cuts: Iterable[int]) -> list[Bucket]:
        """Per-minute buckets of [lo, hi), also cut at `cuts`; rollups where final."""
        a, b = _minutes(lo, hi)
        have = self.store.rollups(spec.id, a, b) if a < b and self.use_rollups else {}
        inner = {t for t in cuts if lo < t < hi}
        whole = {t: agg for t, agg in have.items()
                 if not any(t < c < t + MINUTE_MS for c in inner)}
        out = [Bucket(t, t + MINUTE_MS, agg) for t, agg in whole.items()]
        holes = [(lo, a), (b, hi)] + [(t, t + MINUTE_MS) for t in range(a, b, MINUTE_MS)
                                      if t not in whole]
        for r_lo, r_hi in _merge(holes):
            out += self.raw(spec, r_lo, r_hi, MINUTE_MS, inner)
        return sorted(out, key=lambda x: x.start_ms)

    def oee(self, machine: str, start: dt.datetime | int, end: dt.datetime | int,
            shift: ShiftInstance | None = None) -> OeeReport:
        spec = MachineSpec.from_plant(self.plant, machine)
        lo, hi = to_ms(start), to_ms(end)
        if hi <= lo:
            raise KpiError(f"empty window: end {hi} ms is not after start {lo} ms")
        agg, minutes = self.total(spec, lo, hi)
        return OeeReport(machine, spec.line, lo, hi, compute(agg, self.settings), minutes,
                         shift.key if shift else None)

    def wip(self, line_id: str, start: dt.datetime | int, end: dt.datetime | int) -> WipReport:
        line = self.plant.line(line_id)
        if line is None:
            raise KpiError(f"unknown line {line_id!r} (known: "
                           f"{[x.id for x in self.plant.lines]})")
        lo, hi = to_ms(start), to_ms(end)
        if hi <= lo:
            raise KpiError(f"empty window: end {hi} ms is not after start {lo} ms")
        anchor = self.store.anchor(line_id, lo) or self.store.anchor(line_id, hi - 1)
        anchored = anchor is not None
        if anchor is None:
            anchor = Anchor(lo)
        first = min(anchor.ts_ms, lo)
        window_start = max(lo, anchor.ts_ms)
        per_station = {}
        for station in line.stations:
            spec = MachineSpec.from_plant(self.plant, station)
            per_station[station] = self.buckets(spec, first, hi, [anchor.ts_ms, window_start])
        edges = [b.start_ms for b in per_station[line.stations[0]]] + [hi]
        counts = {s: [(b.agg.parts_total, b.agg.scrap_total) for b in bs]
                  for s, bs in per_station.items()}
        result = wip_from_counts(line, edges, counts, anchor, window_start, anchored)
        window = {s: [b for b in bs if b.start_ms >= window_start]
                  for s, bs in per_station.items()}
        orders = progress(line, window, self.store.targets(line_id))
        return WipReport(result, tuple(orders))


def compute_oee(plant: Plant, store: KpiStore, machine: str, start: dt.datetime | int,
                end: dt.datetime | int, settings: Settings | None = None) -> OeeReport:
    """OEE of `machine` over [start, end) from what InfluxDB holds."""
    return Engine(plant, store, settings).oee(machine, start, end)


def compute_wip(plant: Plant, store: KpiStore, line: str, start: dt.datetime | int,
                end: dt.datetime | int, settings: Settings | None = None) -> WipReport:
    """WIP of `line` at `end` (from its latest stocktake), Little's law over [start, end),
    and work-order progress over the window."""
    return Engine(plant, store, settings).wip(line, start, end)


def shift_window(plant: Plant, name: str, date: dt.date) -> ShiftInstance:
    """The instance of shift `name` on production date `date`."""
    found = ShiftCalendar.of(plant).find(name, date)
    if found is None:
        names = sorted({s.name for s in plant.calendar.shifts})
        raise KpiError(f"no shift {name!r} on {date.isoformat()} (shifts: {names})")
    return found
