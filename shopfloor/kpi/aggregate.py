"""Samples of one machine -> additive aggregates per bucket (e.g. per minute) of a window.

The samples given should reach `context_ms(spec, settings)` beyond both ends of the window
and include the nearest sample outside that margin on each side (more does no harm).
Then every episode's minor/unplanned decision, every startup period and every counter
pair that a boundary cuts are decided exactly as with the full history, so that the
buckets of adjacent windows add up to the aggregate of their union.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shopfloor.kpi import classified as downtime_classes
from shopfloor.kpi import counters, timeline
from shopfloor.kpi.buckets import Agg
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.classified import Classified
from shopfloor.kpi.model import KpiMachineSpec, KpiSettings, Sample
from shopfloor.kpi.timeline import Segment
from shopfloor.shared.enums import MachineState
from shopfloor.shared.reasons import Loss

PLANNED_LOSS, SETUP_LOSS = str(Loss.PLANNED), str(Loss.SETUP)
OFF, BREAK, POT = 0, 1, 2  # calendar status of a piece of time
ATTRIBUTED, UNATTRIBUTED, UNPLANNED = 0, 1, 2  # where a counted part goes


@dataclass(frozen=True, slots=True)
class Bucket:
    start_ms: int
    end_ms: int
    agg: Agg


def context_ms(spec: KpiMachineSpec, settings: KpiSettings) -> int:
    """How far beyond a window the samples must reach for exact results."""
    limit = settings.gap_factor * max(spec.poll_ms, spec.value_poll_ms)
    return int(max(settings.t_minor_s, settings.startup_s) * 1000 + 2 * limit + 1000)


def bounds(lo: int, hi: int, bucket_ms: int | None, cuts: Iterable[int] = ()) -> list[int]:
    """Bucket boundaries: lo, every multiple of bucket_ms inside, the `cuts` inside, hi."""
    inner = {t for t in cuts if lo < t < hi}
    if bucket_ms is not None:
        inner.update(range((lo // bucket_ms + 1) * bucket_ms, hi, bucket_ms))
    return [lo, *sorted(inner), hi]


@dataclass(slots=True)
class _Pieces:
    """The window's time cut at every boundary that matters, as parallel lists."""

    starts: list[int]
    ends: list[int]
    segs: list[Segment]
    bucket: list[int]  # -1: outside the window
    cls: list[int]  # ATTRIBUTED / UNATTRIBUTED / UNPLANNED for counts
    startup: list[bool]


def aggregate(
    spec: KpiMachineSpec,
    samples: Iterable[Sample],
    calendar: ShiftCalendar,
    lo: int,
    hi: int,
    bucket_ms: int | None = None,
    settings: KpiSettings | None = None,
    data_end_ms: int | None = None,
    cuts: Iterable[int] = (),
    classified: Sequence[Classified] = (),
) -> list[Bucket]:
    """Aggregates of [lo, hi) per bucket (multiples of `bucket_ms` and `cuts` split it).
    `data_end_ms`: the data is known complete up to there (a last sample older than the
    gap limit then ends in UNK, not in its state). `classified`: downtime an operator
    classified as planned or setup (kpi/classified.py)."""
    settings = settings or KpiSettings()
    clean = timeline.clean(samples)
    obs = timeline.observations(spec, clean, settings.gap_factor)
    limit = settings.gap_factor * spec.poll_ms
    ext_lo = min([lo] + ([clean[0].ts_ms] if clean else []))
    ext_hi = max([hi] + ([int(clean[-1].ts_ms + limit) + 1] if clean else []))
    segs = timeline.segments(obs, limit, ext_lo, ext_hi, data_end_ms)
    timeline.mark_episodes(segs, settings)
    segs = downtime_classes.apply(segs, classified)
    edges = bounds(lo, hi, bucket_ms, cuts)
    aggs = [Agg() for _ in edges[:-1]]
    pieces = _cut(segs, edges, calendar, timeline.startup_spans(segs, settings), settings)
    _time(pieces, aggs, settings)
    _count(spec, clean, pieces, aggs, edges)
    return [Bucket(edges[i], edges[i + 1], aggs[i]) for i in range(len(aggs))]


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _inside(spans: list[tuple[int, int]], starts: list[int], t: int) -> int:
    """Index of the span holding t, or -1."""
    i = bisect_right(starts, t) - 1
    return i if i >= 0 and t < spans[i][1] else -1


def _planned_flag(seg: Segment, settings: KpiSettings) -> bool:
    if seg.loss == PLANNED_LOSS:  # an operator classified this stop as planned
        return True
    if seg.state is not MachineState.PLANNED_STOP:
        return False
    return settings.planned_reasons is None or seg.reason in settings.planned_reasons


def _status(is_break: bool, seg: Segment) -> int:
    """Calendar status of planned time in `seg`'s state: a calendar break is PDOT unless
    the machine is `running` there (OEE.md: running through a break moves that time, and
    its parts, back into PBT). The one place that decides it, for time and for counts."""
    return BREAK if is_break and seg.state is not MachineState.RUNNING else POT


def _count_class(seg: Segment, plan: int, settings: KpiSettings) -> int:
    if seg.state is None or seg.state is MachineState.OFFLINE:
        return UNATTRIBUTED
    if plan != POT or _planned_flag(seg, settings):
        return UNPLANNED
    return ATTRIBUTED


def _cut(
    segs: list[Segment],
    edges: list[int],
    calendar: ShiftCalendar,
    startups: list[tuple[int, int]],
    settings: KpiSettings,
) -> _Pieces:
    lo, hi = edges[0], edges[-1]
    plan = calendar.planned(lo, hi)
    plan_spans = [(p.start_ms, p.end_ms) for p in plan]
    plan_starts = [s for s, _ in plan_spans]
    startups = _union(startups)
    startup_starts = [s for s, _ in startups]
    cuts = sorted({*edges, *(t for s in plan_spans for t in s), *(t for s in startups for t in s)})
    out = _Pieces([], [], [], [], [], [])
    for seg in segs:
        k = bisect_right(cuts, seg.start_ms)
        start = seg.start_ms
        while start < seg.end_ms:
            end = min(seg.end_ms, cuts[k]) if k < len(cuts) else seg.end_ms
            k += 1
            if start >= end:
                continue
            bucket = bisect_right(edges, start) - 1 if lo <= start < hi else -1
            p = _inside(plan_spans, plan_starts, start)
            status = OFF if p < 0 else _status(plan[p].is_break, seg)
            out.starts.append(start)
            out.ends.append(end)
            out.segs.append(seg)
            out.bucket.append(bucket if bucket < len(edges) - 1 else -1)
            out.cls.append(_count_class(seg, status, settings) | (status << 4))
            out.startup.append(_inside(startups, startup_starts, start) >= 0)
            start = end
    return out


def _time(pieces: _Pieces, aggs: list[Agg], settings: KpiSettings) -> None:
    """Seconds per bucket, and episode starts (FE, minor stops)."""
    for i, seg in enumerate(pieces.segs):
        b = pieces.bucket[i]
        if b < 0:
            continue
        status = pieces.cls[i] >> 4
        if status == OFF:
            continue
        agg = aggs[b]
        ms = pieces.ends[i] - pieces.starts[i]
        agg.pot_ms += ms
        if status == BREAK or _planned_flag(seg, settings):
            agg.pdot_ms += ms
            continue
        if seg.loss == SETUP_LOSS:  # an operator classified this stop as setup (L2)
            agg.aust_ms += ms
            continue
        state = seg.state
        if state is None or state is MachineState.OFFLINE:
            agg.unk_ms += ms
        elif state is MachineState.RUNNING:
            agg.apt_ms += ms
        elif state is MachineState.SETUP:
            agg.aust_ms += ms
        elif seg.minor:
            agg.l3_ms += ms
            if seg.episode_start and pieces.starts[i] == seg.start_ms:
                agg.minor_stops += 1
        else:
            agg.l1_ms += ms
            if state is MachineState.STOPPED:
                agg.l1_stopped_ms += ms
                if seg.episode_start and pieces.starts[i] == seg.start_ms:
                    agg.fe += 1


def _readings(clean: list[Sample], point: str | None, width: int) -> list[tuple[int, int]]:
    if point is None:
        return []
    out = []
    as_count = counters.as_count
    for s in clean:
        v = s.values.get(point)
        if v is None or (s.bad and point in s.bad):
            continue
        if type(v) is not int or not 0 <= v < width:
            v = as_count(v, width)
            if v is None:
                continue
        out.append((s.ts_ms, v))
    return out


def _count(
    spec: KpiMachineSpec, clean: list[Sample], pieces: _Pieces, aggs: list[Agg], edges: list[int]
) -> None:
    pri_min = spec.pri_min_s
    for point, width, is_reject in (
        (spec.total_point, spec.total_width, False),
        (spec.reject_point, spec.reject_width, True),
    ):
        for pair in counters.pairs(_readings(clean, point, width), pri_min, width):
            _flag(pair, aggs, edges)
            if pair.delta:
                shares, spans_unk = _shares(pieces, pair)
                for idx, share in shares:
                    x = pair.delta * share
                    _credit(spec, pieces, idx, x, is_reject, spans_unk, aggs)


_FLAG_FIELDS = {
    counters.PairFlag.WRAP: "wraps",
    counters.PairFlag.RESET: "resets",
    counters.PairFlag.JUMP: "jumps",
    counters.PairFlag.RESET_UNKNOWN: "reset_unknown",
}


def _flag(pair: counters.Pair, aggs: list[Agg], edges: list[int]) -> None:
    name = _FLAG_FIELDS.get(pair.flag)
    t = pair.t1_ms - 1
    if name is not None and edges[0] <= t < edges[-1]:
        agg = aggs[bisect_right(edges, t) - 1]
        setattr(agg, name, getattr(agg, name) + 1)


def _shares(pieces: _Pieces, pair: counters.Pair) -> tuple[list[tuple[int, float]], bool]:
    """Pieces a pair covers with the share of its delta each gets, and whether the pair
    spans UNK (then it is not attributed to OEE and is spread by elapsed time)."""
    i = bisect_right(pieces.starts, pair.t0_ms) - 1
    if pieces.ends[i] >= pair.t1_ms:
        return [(i, 1.0)], pieces.cls[i] & 15 == UNATTRIBUTED
    spans: list[tuple[int, int]] = []
    while i < len(pieces.starts) and pieces.starts[i] < pair.t1_ms:
        overlap = min(pieces.ends[i], pair.t1_ms) - max(pieces.starts[i], pair.t0_ms)
        spans.append((i, overlap))
        i += 1
    spans_unk = any(pieces.cls[j] & 15 == UNATTRIBUTED for j, _ in spans)
    if spans_unk:
        weights = spans
    else:
        weights = [(j, w if pieces.segs[j].state is MachineState.RUNNING else 0)
                   for j, w in spans]
        if not any(w for _, w in weights):
            weights = spans
    whole = sum(w for _, w in weights)
    return [(j, w / whole) for j, w in weights if w], spans_unk


def _credit(
    spec: KpiMachineSpec,
    pieces: _Pieces,
    i: int,
    x: float,
    is_reject: bool,
    spans_unk: bool,
    aggs: list[Agg],
) -> None:
    b = pieces.bucket[i]
    if b < 0:
        return
    agg, seg = aggs[b], pieces.segs[i]
    if seg.work_order is not None:
        order = agg.orders.setdefault(seg.work_order, [0.0, 0.0])
        order[1 if is_reject else 0] += x
    cls = UNATTRIBUTED if spans_unk else pieces.cls[i] & 15
    if cls != ATTRIBUTED:
        name = ("sq_" if is_reject else "pq_") + (
            "unattributed" if cls == UNATTRIBUTED else "unplanned")
        setattr(agg, name, getattr(agg, name) + x)
        return
    product = spec.products.get(seg.product) if seg.product is not None else None
    if not is_reject:
        agg.pq += x
        if product is None:
            agg.pq_unknown_product += x
        else:
            agg.nrt_s += product.pri_s * x
            agg.fpt_s += product.pri_s * x
        return
    agg.sq += x
    if product is None:
        agg.sq_unknown_product += x
        return
    agg.fpt_s -= product.pri_s * x
    if pieces.startup[i] and seg.state is MachineState.RUNNING:
        agg.l6_s += product.pri_s * x
    else:
        agg.l5_s += product.pri_s * x
