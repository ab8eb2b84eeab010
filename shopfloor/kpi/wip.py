"""Work in progress per buffer and per line (docs/oee.md "WIP"), from per-station counts.

Station i has cumulative parts T_i (rejects included) and rejects R_i. The buffer after
station i holds B_i(t) = B_i(t_a) + dT_i - dR_i - dT_i+1 from an anchor t_a (a stocktake);
the line holds the sum. Deltas are the counter rules' deltas (bucket aggregates), never
raw counters of different stations subtracted. The level at any instant t counts from
the latest stocktake at or before t (the flow since it added), or, before the first
stocktake, backwards from the first one after t (the flow from t to it subtracted). A
line without any stocktake has no level: only its change over the window is known.
Levels and counts are reported as whole parts (a counter pair cut by a boundary is split
in proportion, so sums are fractions inside; they are rounded on the way out).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopfloor.kpi.buckets import parts
from shopfloor.shared.plant import Line


@dataclass(frozen=True, slots=True)
class Anchor:
    """A stocktake at `ts_ms`: parts in the whole line, and optionally in each buffer (by
    upstream station). With per-buffer counts the line count is their sum; without them
    the buffers' levels are unknown (reported as None) and only the line level is known."""

    ts_ms: int
    line_count: int = 0
    buffers: Mapping[str, int] = field(default_factory=dict)

    @property
    def per_buffer(self) -> bool:
        return bool(self.buffers)


@dataclass(frozen=True, slots=True)
class BufferWip:
    upstream: str
    downstream: str
    wip: int | None  # parts at the window end (None: no stocktake counted this buffer)
    change: int  # dT_i - dR_i - dT_i+1 over the window
    capacity: int | None
    min_wip: int | None  # over the window (at bucket boundaries), when levels are known
    max_wip: int | None
    drift: bool  # below 0 or above capacity somewhere in the window


@dataclass(frozen=True, slots=True)
class WipResult:
    """WIP of a line at `end_ms`, with Little's law over [start_ms, end_ms): mean WIP
    (integrated over time, parts), throughput (good outfeed, parts per hour) and lead
    time (seconds) when the law holds over the window (see docs/oee.md). `anchored`
    False: no stocktake of the line at all, so `wip` (and every level) is None and only
    `change` (the line's in - out - scrap over the window) is known."""

    line: str
    start_ms: int
    end_ms: int
    anchor_ms: int | None  # the stocktake the level at end_ms counts from
    anchored: bool
    buffers: tuple[BufferWip, ...]
    wip: int | None
    mean_wip: float | None
    throughput_per_h: float | None
    lead_time_s: float | None
    little_holds: bool
    drift: bool
    inflow: int  # parts into the first station's outfeed over the window
    outflow_good: int  # good parts out of the last station over the window
    change: int = 0  # the line's level change over the window (inflow - outflow - scrap)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _flows(line: Line, n: int, counts: Mapping[str, Sequence[tuple[float, float]]]
           ) -> list[list[float]]:
    """Cumulative flow into each buffer i from edges[0] to every boundary k."""
    out = []
    for i, up in enumerate(line.stations[:-1]):
        down = line.stations[i + 1]
        level, path = 0.0, [0.0]
        for k in range(n - 1):
            parts_up, scrap_up = counts[up][k]
            level += parts_up - scrap_up - counts[down][k][0]
            path.append(level)
        out.append(path)
    return out


class _Levels:
    """Levels at boundaries of `edges` as seen from a given stocktake (index into the
    sorted anchors): its count plus the flow from its boundary (negative before it)."""

    def __init__(self, line: Line, edges: Sequence[int], flows: list[list[float]],
                 anchors: Sequence[Anchor]) -> None:
        self.line, self.flows, self.anchors = line, flows, anchors
        last = len(edges) - 1
        self.at = [min(bisect_left(edges, a.ts_ms), last) for a in anchors]
        self.n = len(edges)

    def governing(self, k: int) -> int | None:
        """The stocktake boundary k counts from: the latest at or before it, else the
        first after it; None without any."""
        if not self.anchors:
            return None
        return max(bisect_right(self.at, k) - 1, 0)

    def buffer(self, i: int, k: int, g: int) -> float | None:
        anchor = self.anchors[g]
        if not anchor.per_buffer:
            return None
        up = self.line.stations[i]
        return anchor.buffers.get(up, 0) + self.flows[i][k] - self.flows[i][self.at[g]]

    def total(self, k: int, g: int) -> float:
        a = self.at[g]
        return self.anchors[g].line_count + sum(f[k] - f[a] for f in self.flows)


def compute_wip(
    line: Line,
    edges: Sequence[int],
    counts: Mapping[str, Sequence[tuple[float, float]]],
    anchors: Anchor | Sequence[Anchor] | None,
    start_ms: int,
    stable_tolerance: float = 0.1,
    end_ms: int | None = None,
) -> WipResult:
    """WIP from per-station (parts, scrap) per bucket [edges[k], edges[k+1]), from the
    stocktakes `anchors` (each at a boundary of `edges`; edges[0] may be a stocktake
    before the window, the first bucket then being the flow from it to the window) and
    `start_ms` the window start. When no bucket begins at `start_ms` (a station's data
    begins later), the window is measured from the first edge at or after it. `end_ms`
    (an edge; default the last): the window's end, when the edges go on to a stocktake
    after the window (the levels then count backwards from it)."""
    if isinstance(anchors, Anchor):
        anchors = [anchors]
    anchors = sorted(anchors or (), key=lambda a: a.ts_ms)
    last = len(edges) - 1 if end_ms is None else bisect_left(edges, end_ms)
    n = last + 1  # boundaries of the window (edges beyond: flow to a later stocktake)
    first = min(bisect_left(edges, start_ms), n - 1)
    flows = _flows(line, len(edges), counts)
    levels = _Levels(line, edges, flows, anchors)
    # the window's levels bucket by bucket, each bucket from the stocktake governing its
    # start (a stocktake inside the window is a step at its boundary)
    spans = [(k, k + 1) for k in range(first, n - 1)] or [(first, first)]
    buffers = []
    for i, up in enumerate(line.stations[:-1]):
        cap = line.buffer_capacity.get(up)
        seen = [v for a, b in spans if (g := levels.governing(a)) is not None
                for v in (levels.buffer(i, a, g), levels.buffer(i, b, g)) if v is not None]
        g_end = levels.governing(n - 1)
        level = levels.buffer(i, n - 1, g_end) if g_end is not None else None
        low = parts(min(seen)) if seen else None
        high = parts(max(seen)) if seen else None
        drift = low is not None and high is not None and (
            low < 0 or (cap is not None and high > cap))
        buffers.append(BufferWip(up, line.stations[i + 1],
                                 None if level is None else parts(level),
                                 parts(flows[i][n - 1] - flows[i][first]), cap, low, high,
                                 drift))
    first_st, last_st = line.stations[0], line.stations[-1]
    inflow = sum(counts[first_st][k][0] for k in range(first, n - 1))
    out_good = sum(counts[last_st][k][0] - counts[last_st][k][1] for k in range(first, n - 1))
    change = sum(f[n - 1] - f[first] for f in flows)
    end = edges[n - 1]
    hours = (end - start_ms) / 3_600_000
    throughput = out_good / hours if hours > 0 else None
    g_end = levels.governing(n - 1)
    if g_end is None:  # never anchored: no level, no Little's law, only the change
        return WipResult(
            line=line.id, start_ms=start_ms, end_ms=end, anchor_ms=None,
            anchored=False, buffers=tuple(buffers), wip=None, mean_wip=None,
            throughput_per_h=throughput, lead_time_s=None, little_holds=False, drift=False,
            inflow=parts(inflow), outflow_good=parts(out_good), change=parts(change))
    pairs = [(levels.total(a, g), levels.total(b, g), edges[b] - edges[a])
             for a, b in spans if (g := levels.governing(a)) is not None]
    span = end - edges[first]
    mean = sum((x + y) / 2 * dt for x, y, dt in pairs) / span if span > 0 else None
    wip = levels.total(n - 1, g_end)
    at_start = pairs[0][0]
    caps = [line.buffer_capacity.get(s) for s in line.stations[:-1]]
    line_cap = sum(c for c in caps if c is not None) if all(c is not None for c in caps) else None
    low = parts(min(min(x, y) for x, y, _ in pairs))
    high = parts(max(max(x, y) for x, y, _ in pairs))
    drift = any(b.drift for b in buffers) or low < 0 or (
        line_cap is not None and bool(caps) and high > line_cap)
    holds = bool(
        mean is not None and throughput and throughput > 0 and not drift and len(flows) > 0
        and abs(wip - at_start) <= max(1.0, stable_tolerance * mean)
    )
    lead = mean / throughput * 3600 if holds and mean is not None and throughput else None
    return WipResult(
        line=line.id, start_ms=start_ms, end_ms=end, anchor_ms=anchors[g_end].ts_ms,
        anchored=True, buffers=tuple(buffers), wip=parts(wip), mean_wip=mean,
        throughput_per_h=throughput, lead_time_s=lead, little_holds=holds, drift=drift,
        inflow=parts(inflow), outflow_good=parts(out_good), change=parts(change),
    )
