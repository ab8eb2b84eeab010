"""Pure per-machine state of the live KPI engine (no I/O, no clock).

`MachineLive` keeps a recent tail of samples in event-time order, remembers which time
ranges new samples made dirty, recomputes those minutes with the same pure engine the
on-demand path uses, and caches minute aggregates for the current shift and the rolling
window. What a new sample can change (docs/oee.md "Live"):

* an in-order sample (newer than every other): the previous sample's segment and counter
  pair, and the minor/unplanned decision of the episode it extends, which reaches back at
  most T_minor: dirty from `previous - T_minor - gap limit`;
* a late sample: everything within the context margin around it.

Samples older than the in-memory tail come from InfluxDB (`older` callback): the
collector has written them before the sink sees them.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass

from shopfloor.kpi.aggregate import aggregate, context_ms
from shopfloor.kpi.buckets import Agg
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.classified import Classified
from shopfloor.kpi.model import KpiMachineSpec, KpiSettings, Sample

MINUTE_MS = 60_000
Piece = tuple[int, int, Agg]  # [start, end) of a bucket inside one minute, its aggregate
Older = Callable[[int, int], list[Sample]]  # samples in [lo, hi) (+ nearest outside lo)


@dataclass(frozen=True, slots=True)
class MinuteOut:
    """A recomputed complete minute: to be stored as an `oee_rollup` point."""

    start_ms: int
    agg: Agg
    final: bool


def floor_minute(ms: int) -> int:
    return ms // MINUTE_MS * MINUTE_MS


class MachineLive:
    def __init__(self, spec: KpiMachineSpec, calendar: ShiftCalendar, settings: KpiSettings):
        self.spec = spec
        self.calendar = calendar
        self.settings = settings
        self.context = context_ms(spec, settings)
        self.limit = int(settings.gap_factor * spec.poll_ms)
        self.head_margin = int(settings.t_minor_s * 1000) + self.limit
        self.samples: list[Sample] = []
        self.times: list[int] = []
        self.last_ts: int | None = None
        self.memory_lo: int | None = None  # samples before this are only in the store
        self.dirty: list[tuple[int, int]] = []
        self.expand: list[int] = []  # late samples whose previous sample is in the store
        self.computed_until: int | None = None  # minutes before this are in `minutes`
        self.minutes: dict[int, list[Piece]] = {}  # complete minutes, cut at shift bounds
        self.partial: list[Piece] | None = None  # the incomplete last minute
        self.unfinal: set[int] = set()  # minutes stored with final=false
        self._prefix: dict[int, tuple[int, Agg]] = {}  # lo -> (upto, sum of [lo, upto))
        self.classified: list[Classified] = []  # planned/setup downtime (kpi/classified.py)

    def add(self, sample: Sample) -> None:
        """Take one sample (any order; duplicates are harmless)."""
        ts = sample.ts_ms
        if self.last_ts is None:
            if self.computed_until is None:
                self.memory_lo = ts
                self.computed_until = floor_minute(ts)
            else:  # started empty (see `start`): the minutes before may change
                self.dirty.append((ts - self.head_margin, ts))
            self.last_ts = ts
        elif ts > self.last_ts:
            self.dirty.append((self.last_ts - self.head_margin, ts))
            self.last_ts = ts
        else:
            self._late(ts)
        if self.memory_lo is not None and ts < self.memory_lo:
            return  # the store has it; recompute reads it from there
        if self.times and ts > self.times[-1]:
            self.times.append(ts)
            self.samples.append(sample)
            return
        i = bisect_left(self.times, ts)
        if i < len(self.times) and self.times[i] == ts:
            self.samples[i] = min(self.samples[i], sample, key=lambda s: -s.seq)
            return
        insort(self.times, ts)
        self.samples.insert(i, sample)

    def _late(self, ts: int) -> None:
        """A late sample splits the counter pair (and maybe the gap) around it: dirty
        from its previous to its next sample, plus the context margin. A previous sample
        older than the tail in memory is looked up in the store at recompute time."""
        i = bisect_left(self.times, ts)
        nxt = self.times[i] if i < len(self.times) else ts
        if nxt == ts and i + 1 < len(self.times):
            nxt = self.times[i + 1]
        if i > 0 and (self.memory_lo is None or ts >= self.memory_lo):
            self.dirty.append((self.times[i - 1] - self.context, nxt + self.context))
        else:
            self.expand.append(ts)
            self.dirty.append((ts - self.context, nxt + self.context))

    def start(self, at_ms: int) -> None:
        """Begin at `at_ms` without a sample (a silent machine): its minutes from there
        are computed from what the store holds before it (usually: unknown)."""
        if self.computed_until is None:
            self.memory_lo = self.computed_until = floor_minute(at_ms)

    def pieces(self, lo: int, hi: int) -> list[Piece] | None:
        """Cached buckets inside [lo, hi), in time order; None if a minute is missing."""
        out: list[Piece] = []
        partial_t = floor_minute(self.partial[0][0]) if self.partial else None
        for t in range(floor_minute(lo), hi, MINUTE_MS):
            parts = self.minutes.get(t)
            if parts is None and t == partial_t:
                parts = self.partial
            if parts is None:
                return None
            out += [p for p in parts if lo <= p[0] and p[1] <= hi]
        return out

    def _samples(self, lo: int, hi: int, older: Older) -> list[Sample]:
        a = max(0, bisect_left(self.times, lo) - 1)
        b = bisect_left(self.times, hi) + 1
        out = self.samples[a:b]
        if self.memory_lo is not None and lo - 1 < self.memory_lo:
            out = older(lo, self.memory_lo) + out
        return out

    def ranges(self, until_ms: int) -> list[tuple[int, int]]:
        """Minute-aligned ranges to recompute, merged, up to `until_ms`."""
        if self.computed_until is None:
            return []
        spans = [(floor_minute(lo), min(hi + self.context, until_ms)) for lo, hi in self.dirty]
        spans.append((self.computed_until, until_ms))
        spans = sorted((floor_minute(lo), hi) for lo, hi in spans if lo < hi)
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        return merged

    def classify(self, spans: list[Classified]) -> None:
        """Take the machine's current classified downtime; what changed is recomputed
        (both the spans that went and the ones that came)."""
        spans = sorted(spans, key=lambda x: (x.start_ms, x.end_ms))
        if spans == self.classified:
            return
        for span in set(spans).symmetric_difference(self.classified):
            self.dirty.append((span.start_ms, span.end_ms))
        self.classified = spans

    def cuts(self, lo: int, hi: int) -> list[int]:
        """Shift boundaries in [lo, hi): buckets are cut there so that a shift's total is
        a sum of whole buckets even when a shift does not start on a minute."""
        return [t for i in self.calendar.instances(lo, hi) for t in (i.start_ms, i.end_ms)]

    def recompute(self, until_ms: int, older: Older) -> list[MinuteOut]:
        """Recompute dirty minutes up to event time `until_ms`; the complete ones are
        returned (to store), the last incomplete one kept as `partial`."""
        out: list[MinuteOut] = []
        final_until = (self.last_ts or 0) - self.context
        for ts in self.expand:
            before = [s.ts_ms for s in older(ts, ts + 1) if s.ts_ms < ts]
            if before:
                self.dirty.append((before[-1] - self.context, ts + self.context))
        self.expand.clear()
        for lo, hi in self.ranges(until_ms):
            samples = self._samples(lo - self.context, hi + self.context, older)
            pieces: dict[int, list[Piece]] = {}
            for b in aggregate(self.spec, samples, self.calendar, lo, hi, MINUTE_MS,
                               self.settings, cuts=self.cuts(lo, hi),
                               classified=self.classified):
                pieces.setdefault(floor_minute(b.start_ms), []).append(
                    (b.start_ms, b.end_ms, b.agg))
            for t, parts in pieces.items():
                if t + MINUTE_MS <= hi:
                    self.minutes[t] = parts
                    self._changed(t)
                    out.append(MinuteOut(t, _sum(parts), t + MINUTE_MS <= final_until))
                else:
                    self.partial = parts
        # Minutes stored provisionally that in-order data can no longer change: final now.
        for m in out:
            (self.unfinal.add if not m.final else self.unfinal.discard)(m.start_ms)
        for t in sorted(self.unfinal):
            if t + MINUTE_MS <= final_until:
                self.unfinal.discard(t)
                if t in self.minutes:
                    out.append(MinuteOut(t, _sum(self.minutes[t]), True))
        self.dirty.clear()
        self.computed_until = max(self.computed_until or 0, floor_minute(until_ms))
        return out

    def total(self, lo: int, hi: int) -> tuple[Agg, int]:
        """Sum of the cached buckets inside [lo, hi) (the partial minute included), and
        how many whole minutes of the range were missing from the cache. `lo` and `hi`
        should be minute or shift boundaries (or the watermark, for `hi`). The sum of
        minutes that in-order data can no longer change is remembered per `lo`."""
        settled = floor_minute((self.last_ts or lo) - self.context)
        agg, start = Agg(), floor_minute(lo)
        upto = min(settled, floor_minute(hi))
        cached = self._prefix.get(lo)
        if cached is not None and cached[0] <= upto:
            agg, start = cached[1].copy(), cached[0]
        agg, missing, start = self._add_minutes(agg, lo, hi, start, upto)
        if not missing and start > floor_minute(lo):
            self._prefix[lo] = (start, agg.copy())
        agg, more, _ = self._add_minutes(agg, lo, hi, start, hi)
        return agg, missing + more

    def _add_minutes(self, agg: Agg, lo: int, hi: int, start: int, stop: int
                     ) -> tuple[Agg, int, int]:
        missing = 0
        partial_t = floor_minute(self.partial[0][0]) if self.partial else None
        t = start
        while t < stop:
            parts = self.minutes.get(t)
            if parts is None and t == partial_t:
                parts = self.partial
            if parts is None:
                missing += t + MINUTE_MS <= hi
            else:
                for begin, end, piece in parts:
                    if lo <= begin and end <= hi:
                        agg.add(piece)
            t += MINUTE_MS
        return agg, missing, t

    def _changed(self, t: int) -> None:
        """Minute t was (re)computed: forget remembered sums that include it."""
        for lo in [lo for lo, (upto, _) in self._prefix.items() if lo <= t + MINUTE_MS
                   and t < upto]:
            del self._prefix[lo]

    def trim(self, keep_minutes_from: int) -> None:
        """Forget minutes before `keep_minutes_from` and samples no recompute needs."""
        for t in [t for t in self.minutes if t < keep_minutes_from]:
            del self.minutes[t]
        for lo in [lo for lo in self._prefix if lo < keep_minutes_from]:
            del self._prefix[lo]
        if self.last_ts is None:
            return
        keep = self.last_ts - 2 * self.context - self.head_margin - MINUTE_MS
        i = bisect_left(self.times, keep)
        if i > 1:
            del self.times[: i - 1]
            del self.samples[: i - 1]
            self.memory_lo = self.times[0]

    def fill(self, minute_ms: int, parts: list[Piece]) -> None:
        """Put a minute computed elsewhere (from the store) into the cache."""
        if minute_ms not in self.minutes:
            self.minutes[minute_ms] = parts
            self._changed(minute_ms)


def _sum(parts: list[Piece]) -> Agg:
    out = Agg()
    for _, _, agg in parts:
        out.add(agg)
    return out
