"""State samples -> segments and episodes on event time.

* `clean`: sort by timestamp and keep one sample per timestamp (exact duplicates dropped;
  conflicting samples at one instant resolved by the highest seq, then by value, so that
  any arrival order gives the same result).
* `segments`: sample i's (state, reason, product, work order) holds over [t_i, t_i+1)
  when the gap is at most gap_factor x poll period; a longer gap is UNK as a whole. After
  the last sample the state holds for gap_factor x poll period (a sample is that fresh),
  unless the data is known to go further (`data_end_ms`), in which case the gap is UNK.
  Before the first sample: UNK. A bad-quality state point is `offline`.
* `episodes`: a maximal run of one (state, reason, product); a `stopped`/`idle` episode is
  minor (L3) when its whole duration is below T_minor, else an unplanned stop (L1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shopfloor.kpi.model import KpiMachineSpec, KpiSettings, Sample
from shopfloor.shared.enums import MachineState

STOPS = (MachineState.STOPPED, MachineState.IDLE)

# States whose episodes are stops (a planned_stop whose reason is not allow-listed is one).
_LOSSY = (*STOPS, MachineState.PLANNED_STOP)

Key = tuple[MachineState | None, str | None, int | None, str | None]
UNK_KEY: Key = (None, None, None, None)


@dataclass(slots=True)
class Segment:
    """[start_ms, end_ms) in one (state, reason, product, work order); state None = UNK."""

    start_ms: int
    end_ms: int
    state: MachineState | None
    reason: str | None
    product: int | None
    work_order: str | None
    minor: bool = False  # part of a stopped/idle episode shorter than T_minor (L3)
    episode_start: bool = False  # first segment of its episode
    episode_ms: int = 0  # duration of the whole episode
    loss: str | None = None  # a downtime classification's loss, planned | setup (classified.py)


def _rank(sample: Sample) -> tuple[int, str, str]:
    return sample.seq, repr(sorted(sample.values.items())), repr(sorted(sample.bad))


def clean(samples: Iterable[Sample]) -> list[Sample]:
    """Sorted by timestamp, one sample per timestamp, independent of arrival order."""
    best: dict[int, Sample] = {}
    for s in samples:
        old = best.get(s.ts_ms)
        if old is None or (old != s and _rank(s) > _rank(old)):
            best[s.ts_ms] = s
    return [best[t] for t in sorted(best)]


def observations(spec: KpiMachineSpec, samples: list[Sample], gap_factor: float = 3.0
                 ) -> list[tuple[int, Key]]:
    """(ts_ms, key) for every clean sample that carries the state point. A product or
    work-order value holds for gap_factor of its poll periods: a sample without it uses
    the last one that recent, else the product is unknown (the only product, if the
    machine has one) and no work order is set."""
    out: list[tuple[int, Key]] = []
    default = spec.default_product
    carry = gap_factor * spec.value_poll_ms
    product, product_ts = default, None
    work_order: str | None = None
    wo_ts = None
    codes, unmapped = spec.codes, spec.unmapped
    point, product_point, wo_point = spec.state_point, spec.product_point, spec.work_order_point
    if point is None:
        return out
    offline = MachineState.OFFLINE
    raw_wo: object = None
    last: Key = UNK_KEY
    for s in samples:
        values, bad, ts = s.values, s.bad, s.ts_ms
        if product_point is not None and product_point in values and not (
                bad and product_point in bad):
            product, product_ts = _as_int(values[product_point]), ts
        elif product_ts is not None and ts - product_ts > carry:
            product, product_ts = default, None
        if wo_point is not None and wo_point in values and not (bad and wo_point in bad):
            value, wo_ts = values[wo_point], ts
            if value != raw_wo:
                raw_wo = value
                work_order = str(value).strip() or None
        elif wo_ts is not None and ts - wo_ts > carry:
            work_order, wo_ts, raw_wo = None, None, None
        if bad and point in bad:
            out.append((s.ts_ms, (offline, "bad_quality", product, work_order)))
            continue
        code = values.get(point)
        if code is None:
            continue
        if type(code) is not int:
            code = _as_int(code)
        state, reason = codes.get(code, unmapped) if code is not None else unmapped
        key = (state, reason, product, work_order)
        if key != last:
            last = key
        out.append((s.ts_ms, last))
    return out


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def segments(
    obs: list[tuple[int, Key]],
    limit_ms: float,
    lo: int,
    hi: int,
    data_end_ms: int | None = None,
) -> list[Segment]:
    """Segments covering [lo, hi) exactly, UNK where no sample vouches for the state."""
    out: list[Segment] = []

    def emit(start: int, end: int, key: Key) -> None:
        start, end = max(start, lo), min(end, hi)
        if start >= end:
            return
        if out and out[-1].end_ms == start and _key(out[-1]) == key:
            out[-1].end_ms = end
        else:
            out.append(Segment(start, end, *key))

    cursor = lo
    n = len(obs)
    i = 0
    while i < n:
        t, key = obs[i]
        j = i  # extend over following samples in the same key without a long gap
        while j + 1 < n and obs[j + 1][1] == key and obs[j + 1][0] - obs[j][0] <= limit_ms:
            j += 1
        tj = obs[j][0]
        if j + 1 < n:
            nxt = obs[j + 1][0]
            end = nxt if nxt - tj <= limit_ms else tj
        elif data_end_ms is not None and data_end_ms > tj + limit_ms:
            end = tj
        else:
            end = int(tj + limit_ms)
        emit(cursor, t, UNK_KEY)
        emit(t, end, key)
        cursor = max(cursor, end)
        i = j + 1
    emit(cursor, hi, UNK_KEY)
    return out


def _key(seg: Segment) -> Key:
    return seg.state, seg.reason, seg.product, seg.work_order


def mark_episodes(segs: list[Segment], settings: KpiSettings) -> None:
    """Set minor / episode_start / episode_ms on each segment from its whole episode."""
    t_minor_ms = settings.t_minor_s * 1000.0
    i = 0
    while i < len(segs):
        head = segs[i]
        j = i + 1
        while j < len(segs) and (segs[j].state, segs[j].reason, segs[j].product) == (
            head.state, head.reason, head.product) and segs[j].start_ms == segs[j - 1].end_ms:
            j += 1
        duration = segs[j - 1].end_ms - head.start_ms
        minor = head.state in _LOSSY and duration < t_minor_ms
        head.episode_start = True
        for seg in segs[i:j]:
            seg.minor = minor
            seg.episode_ms = duration
        i = j


def startup_spans(segs: list[Segment], settings: KpiSettings) -> list[tuple[int, int]]:
    """[end of a setup episode, + startup_s): running time there is startup (L6)."""
    spans = []
    length = round(settings.startup_s * 1000)
    for prev, seg in zip(segs, segs[1:], strict=False):
        if prev.state is MachineState.SETUP and seg.state is not MachineState.SETUP:
            spans.append((seg.start_ms, seg.start_ms + length))
    return spans
