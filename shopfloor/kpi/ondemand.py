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
from shopfloor.kpi.errors import KpiError, KpiWorkError
from shopfloor.kpi.model import KpiMachineSpec, KpiSettings
from shopfloor.kpi.oee import OeeResult, compute
from shopfloor.kpi.store import MINUTE_MS, KpiStore
from shopfloor.kpi.wip import WipResult
from shopfloor.kpi.wip import compute_wip as wip_from_counts
from shopfloor.kpi.workorders import OrderProgress, progress
from shopfloor.shared import schema
from shopfloor.shared.plant import Line, Plant


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


def _iso(ms: int) -> str:
    return (schema.EPOCH + dt.timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


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


def _touched(spans: Sequence[Classified], a: int, b: int) -> list[tuple[int, int]]:
    """The minutes of [a, b) that a classified span overlaps, as merged ranges."""
    return _merge((max(a, span.start_ms // MINUTE_MS * MINUTE_MS),
                   min(b, -(-span.end_ms // MINUTE_MS) * MINUTE_MS)) for span in spans)


def _between(ranges: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    """[a, b) without the (sorted, disjoint) `ranges`."""
    out, cursor = [], a
    for lo, hi in ranges:
        if lo > cursor:
            out.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < b:
        out.append((cursor, b))
    return out


class Engine:
    """On-demand KPIs of one plant over its store."""

    def __init__(self, plant: Plant, store: KpiStore, settings: KpiSettings | None = None,
                 use_rollups: bool = True):
        self.plant = plant
        self.store = store
        self.settings = settings or KpiSettings.of(plant)
        self.calendar = ShiftCalendar.of(plant)
        self.use_rollups = use_rollups  # False: everything from raw telemetry

    def raw(self, spec: KpiMachineSpec, lo: int, hi: int, bucket_ms: int | None = None,
            cuts: Iterable[int] = (), classified: Sequence[Classified] = ()) -> list[Bucket]:
        """Buckets of [lo, hi) computed from raw telemetry (with context around it)."""
        margin = context_ms(spec, self.settings)
        samples = self.store.samples(spec, lo - margin, hi + margin)
        return aggregate(spec, samples, self.calendar, lo, hi, bucket_ms, self.settings,
                         cuts=cuts, classified=classified)

    def total(self, spec: KpiMachineSpec, lo: int, hi: int) -> tuple[Agg, int]:
        """The aggregate of [lo, hi) and how many whole minutes came from rollups: the
        stored final rollups summed in InfluxDB, raw telemetry for the minutes without
        one and the edges (at most `KpiSettings.max_raw_s` of it, else `KpiWorkError`).
        Minutes that downtime classified planned or setup touches are recomputed from raw
        telemetry: a rollup written before the classification does not know it."""
        a, b = _minutes(lo, hi) if self.use_rollups else (lo, lo)
        classified = self.store.classified(spec.id, lo, hi).get(spec.id, [])
        used, minutes = Agg(), 0
        holes = [(lo, a), (b, hi)]
        if a < b:
            dirty = _touched(classified, a, b)
            holes += dirty
            for c_lo, c_hi in _between(dirty, a, b):
                summed, n = self.store.rollup_sum(spec.id, c_lo, c_hi)
                used.add(summed)
                minutes += n
                missing = (c_hi - c_lo) // MINUTE_MS - n
                if missing:
                    self._check_raw(spec, missing * MINUTE_MS, lo, hi)
                    holes += self.store.rollup_holes(spec.id, c_lo, c_hi)
        ranges = _merge(holes)
        self._check_raw(spec, sum(r_hi - r_lo for r_lo, r_hi in ranges), lo, hi)
        for r_lo, r_hi in ranges:
            used.add(total([x.agg for x in self.raw(spec, r_lo, r_hi,
                                                    classified=classified)]))
        return used, minutes

    def _check_raw(self, spec: KpiMachineSpec, raw_ms: int, lo: int, hi: int) -> None:
        """The work bound: raw telemetry beyond `max_raw_s` is refused, not computed."""
        limit = self.settings.max_raw_s
        if raw_ms > limit * 1000:
            raise KpiWorkError(
                f"{spec.id}: {_iso(lo)} to {_iso(hi)} needs {raw_ms / 3_600_000:.1f} h of raw "
                f"telemetry (time without a stored final rollup), more than the "
                f"{limit / 3600:g} h one request may compute (collector.kpi_max_raw_s); ask "
                f"for a shorter window, or one the collector has written rollups for")

    def buckets(self, spec: KpiMachineSpec, lo: int, hi: int, cuts: Iterable[int]) -> list[Bucket]:
        """Per-minute buckets of [lo, hi), also cut at `cuts`; rollups where final."""
        a, b = _minutes(lo, hi)
        have = self.store.rollups(spec.id, a, b) if a < b and self.use_rollups else {}
        inner = {t for t in cuts if lo < t < hi}
        whole = {t: agg for t, agg in have.items()
                 if not any(t < c < t + MINUTE_MS for c in inner)}
        out = [Bucket(t, t + MINUTE_MS, agg) for t, agg in whole.items()]
        holes = _merge([(lo, a), (b, hi)] + [(t, t + MINUTE_MS) for t in range(a, b, MINUTE_MS)
                                             if t not in whole])
        self._check_raw(spec, sum(r_hi - r_lo for r_lo, r_hi in holes), lo, hi)
        for r_lo, r_hi in holes:
            out += self.raw(spec, r_lo, r_hi, MINUTE_MS, inner)
        return sorted(out, key=lambda x: x.start_ms)

    def oee(self, machine: str, start: dt.datetime | int, end: dt.datetime | int,
            shift: ShiftInstance | None = None) -> OeeReport:
        spec = KpiMachineSpec.from_plant(self.plant, machine)
        lo, hi = to_ms(start), to_ms(end)
        if hi <= lo:
            raise KpiError(f"empty window: end {hi} ms is not after start {lo} ms")
        agg, minutes = self.total(spec, lo, hi)
        return OeeReport(machine, spec.line, lo, hi, compute(agg, self.settings), minutes,
                         shift.key if shift else None)

    def wip(self, line_id: str, start: dt.datetime | int, end: dt.datetime | int,
            use_anchors: bool = True, later_anchor: bool = True) -> WipReport:
        """WIP of a line at `end`, per minute over [start, end): each level counts from
        the latest stocktake at or before it, or backwards from the first one after it
        (docs/oee.md "WIP"). The flow from an older stocktake to the window comes from
        stored rollups (`total`), so the work is bounded by the window, never by the
        stocktake's age. `use_anchors=False`: the change only (unanchored);
        `later_anchor=False`: never count backwards from a stocktake after the window (the
        live engine, whose data after its watermark may not be stored yet)."""
        line = self.plant.line(line_id)
        if line is None:
            raise KpiError(f"unknown line {line_id!r} (known: "
                           f"{[x.id for x in self.plant.lines]})")
        lo, hi = to_ms(start), to_ms(end)
        if hi <= lo:
            raise KpiError(f"empty window: end {hi} ms is not after start {lo} ms")
        limit = self.settings.max_wip_window_s
        if hi - lo > limit * 1000:
            raise KpiWorkError(
                f"WIP of {line_id} over {(hi - lo) / 86_400_000:.1f} days: more than the "
                f"{limit / 86400:g} days one request may compute per minute "
                f"(collector.kpi_max_wip_window_s); ask for a shorter window")
        anchors = self.store.anchors(line_id, lo, hi) if use_anchors else []
        cuts = [a.ts_ms for a in anchors if lo < a.ts_ms < hi]
        per_station = {
            station: self.buckets(KpiMachineSpec.from_plant(self.plant, station), lo, hi, cuts)
            for station in line.stations}
        edges = [b.start_ms for b in per_station[line.stations[0]]] + [hi]
        counts = {s: [(b.agg.parts_total, b.agg.scrap_total) for b in bs]
                  for s, bs in per_station.items()}
        if anchors and anchors[0].ts_ms < lo:  # the flow from an older stocktake
            for station, (parts, scrap) in self._flow(line, anchors[0].ts_ms, lo).items():
                counts[station].insert(0, (parts, scrap))
            edges.insert(0, anchors[0].ts_ms)
        later = (self.store.anchor_after(line_id, hi)
                 if use_anchors and later_anchor and not anchors else None)
        if later is not None:  # only a stocktake after the window: count backwards from it
            try:
                flow = self._flow(line, hi, later.ts_ms)
            except KpiWorkError:  # too far after the window: unanchored (change only)
                flow = {}
            if flow:
                for station, (parts, scrap) in flow.items():
                    counts[station].append((parts, scrap))
                edges.append(later.ts_ms)
                anchors = [later]
        result = wip_from_counts(line, edges, counts, anchors, lo, end_ms=hi)
        orders = progress(line, per_station, self.store.targets(line_id))
        return WipReport(result, tuple(orders))


    def _flow(self, line: Line, lo: int, hi: int) -> dict[str, tuple[float, float]]:
        """Per station (parts, scrap) over [lo, hi), from stored rollups (`total`)."""
        out = {}
        for station in line.stations:
            agg = self.total(KpiMachineSpec.from_plant(self.plant, station), lo, hi)[0]
            out[station] = (agg.parts_total, agg.scrap_total)
        return out


def compute_oee(plant: Plant, store: KpiStore, machine: str, start: dt.datetime | int,
                end: dt.datetime | int, settings: KpiSettings | None = None) -> OeeReport:
    """OEE of `machine` over [start, end) from what InfluxDB holds."""
    return Engine(plant, store, settings).oee(machine, start, end)


def compute_wip(plant: Plant, store: KpiStore, line: str, start: dt.datetime | int,
                end: dt.datetime | int, settings: KpiSettings | None = None) -> WipReport:
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
