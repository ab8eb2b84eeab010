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

from shopfloor.kpi.model import MachineSpec, Sample, Settings
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


def observations(spec: MachineSpec, samples: list[Sample]) -> list[tuple[int, Key]]:
    """(ts_ms, key) for every clean sample that carries the state point."""
    out: list[tuple[int, Key]] = []
    product = spec.default_product
    work_order: str | None = None
    codes, unmapped = spec.codes, spec.unmapped
    for s in samples:
        values = s.values
        if spec.product_point in values and spec.product_point not in s.bad:
            product = _as_int(values[spec.product_point])
        if spec.work_order_point in values and spec.work_order_point not in s.bad:
            work_order = str(values[spec.work_order_point]).strip() or None
        point = spec.state_point
        if point is None:
            continue
        if point in s.bad:
            out.append((s.ts_ms, (MachineState.OFFLINE, "bad_quality", product, work_order)))
        elif point in values:
            code = _as_int(values[point])
            state, reason = codes.get(code, unmapped) if code is not None else unmapped
            out.append((s.ts_ms, (state, reason, product, work_order)))
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
    last = len(obs) - 1
    for i, (t, key) in enumerate(obs):
        if i < last:
            nxt = obs[i + 1][0]
            end = nxt if nxt - t <= limit_ms else t
        elif data_end_ms is not None and data_end_ms > t + limit_ms:
            end = t
        else:
            end = int(t + limit_ms)
        emit(cursor, t, UNK_KEY)
        emit(t, end, key)
        cursor = max(cursor, end)
    emit(cursor, hi, UNK_KEY)
    return out


def _key(seg: Segment) -> Key:
    return seg.state, seg.reason, seg.product, seg.work_order


def mark_episodes(segs: list[Segment], settings: Settings) -> None:
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


def startup_spans(segs: list[Segment], settings: Settings) -> list[tuple[int, int]]:
    """[end of a setup episode, + startup_s): running time there is startup (L6)."""
    spans = []
    length = round(settings.startup_s * 1000)
    for prev, seg in zip(segs, segs[1:], strict=False):
        if prev.state is MachineState.SETUP and seg.state is not MachineState.SETUP:
            spans.append((seg.start_ms, seg.start_ms + length))
    return spans
