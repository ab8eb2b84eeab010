"""Work in progress per buffer and per line (docs/oee.md "WIP"), from per-station counts.

Station i has cumulative parts T_i (rejects included) and rejects R_i. The buffer after
station i holds B_i(t) = B_i(t_a) + dT_i - dR_i - dT_i+1 from an anchor t_a (a stocktake,
or an empty line); the line holds the sum. Deltas are the counter rules' deltas (bucket
aggregates), never raw counters of different stations subtracted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopfloor.shared.plant import Line


@dataclass(frozen=True, slots=True)
class Anchor:
    """A stocktake at `ts_ms`: parts in the whole line, and optionally in each buffer (by
    upstream station). With per-buffer counts the line count is their sum; without them
    the buffers' levels are unknown (reported as None) and only the line level is known."""

    ts_ms: int
    line_count: float = 0.0
    buffers: Mapping[str, float] = field(default_factory=dict)

    @property
    def per_buffer(self) -> bool:
        return bool(self.buffers)


@dataclass(frozen=True, slots=True)
class BufferWip:
    upstream: str
    downstream: str
    wip: float | None  # parts at the window end (None: the anchor had only a line count)
    change: float  # dT_i - dR_i - dT_i+1 over the window
    capacity: int | None
    min_wip: float | None  # over the window (at bucket boundaries)
    max_wip: float | None
    drift: bool  # below 0 or above capacity somewhere in the window


@dataclass(frozen=True, slots=True)
class WipResult:
    """WIP of a line at `end_ms`, with Little's law over [start_ms, end_ms): mean WIP
    (integrated over time, parts), throughput (good outfeed, parts per hour) and lead
    time (seconds) when the law holds over the window (see docs/oee.md)."""

    line: str
    start_ms: int
    end_ms: int
    anchor_ms: int
    anchored: bool  # False: no stocktake before the window, an empty line assumed
    buffers: tuple[BufferWip, ...]
    wip: float
    mean_wip: float | None
    throughput_per_h: float | None
    lead_time_s: float | None
    little_holds: bool
    drift: bool
    inflow: float  # parts into the first station's outfeed over the window
    outflow_good: float  # good parts out of the last station over the window

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _paths(
    line: Line, edges: Sequence[int], counts: Mapping[str, Sequence[tuple[float, float]]],
    anchor: Anchor,
) -> list[list[float]]:
    """B_i at every boundary of `edges`, for each buffer i (stations 0..n-2)."""
    out = []
    n = len(edges)
    for i, up in enumerate(line.stations[:-1]):
        down = line.stations[i + 1]
        level = float(anchor.buffers.get(up, 0.0))  # 0 when unknown: a change, not a level
        path = [level]
        for k in range(n - 1):
            parts_up, scrap_up = counts[up][k]
            parts_down = counts[down][k][0]
            level += parts_up - scrap_up - parts_down
            path.append(level)
        out.append(path)
    return out


def _mean(values: list[float], edges: Sequence[int], first: int) -> float | None:
    """Time-weighted mean of a piecewise-linear path from boundary `first` to the end."""
    span = edges[-1] - edges[first]
    if span <= 0:
        return None
    area = sum((values[k] + values[k + 1]) / 2 * (edges[k + 1] - edges[k])
               for k in range(first, len(edges) - 1))
    return area / span


def compute_wip(
    line: Line,
    edges: Sequence[int],
    counts: Mapping[str, Sequence[tuple[float, float]]],
    anchor: Anchor,
    start_ms: int,
    anchored: bool = True,
    stable_tolerance: float = 0.1,
) -> WipResult:
    """WIP from per-station (parts, scrap) per bucket [edges[k], edges[k+1]); edges[0] is
    the anchor time and `start_ms` the window start. When no bucket begins at `start_ms`
    (a station's data begins later, e.g. an anchor set before the first sample), the window
    is measured from the first edge at or after it: no counts, no flow, before that."""
    first = min(bisect_left(edges, start_ms), len(edges) - 1)
    paths = _paths(line, edges, counts, anchor)
    buffers = []
    for i, path in enumerate(paths):
        up = line.stations[i]
        cap = line.buffer_capacity.get(up)
        change = path[-1] - path[first]
        if not anchor.per_buffer:
            buffers.append(BufferWip(up, line.stations[i + 1], None, change, cap, None, None,
                                     False))
            continue
        window = path[first:]
        drift = min(window) < 0 or (cap is not None and max(window) > cap)
        buffers.append(BufferWip(up, line.stations[i + 1], path[-1], change, cap, min(window),
                                 max(window), drift))
    base = 0.0 if anchor.per_buffer else float(anchor.line_count)
    total = [base + sum(p[k] for p in paths) for k in range(len(edges))]
    mean = _mean(total, edges, first)
    first_st, last_st = line.stations[0], line.stations[-1]
    inflow = sum(counts[first_st][k][0] for k in range(first, len(edges) - 1))
    out_good = sum(counts[last_st][k][0] - counts[last_st][k][1]
                   for k in range(first, len(edges) - 1))
    hours = (edges[-1] - start_ms) / 3_600_000
    throughput = out_good / hours if hours > 0 else None
    caps = [line.buffer_capacity.get(s) for s in line.stations[:-1]]
    line_cap = sum(c for c in caps if c is not None) if all(c is not None for c in caps) else None
    window_total = total[first:]
    drift = any(b.drift for b in buffers) or min(window_total) < 0 or (
        line_cap is not None and bool(caps) and max(window_total) > line_cap)
    holds = bool(
        mean is not None and throughput and throughput > 0 and not drift and len(paths) > 0
        and abs(total[-1] - total[first]) <= max(1.0, stable_tolerance * mean)
    )
    lead = mean / throughput * 3600 if holds and mean is not None and throughput else None
    return WipResult(
        line=line.id, start_ms=start_ms, end_ms=edges[-1], anchor_ms=edges[0],
        anchored=anchored, buffers=tuple(buffers), wip=total[-1], mean_wip=mean,
        throughput_per_h=throughput, lead_time_s=lead, little_holds=holds, drift=drift,
        inflow=inflow, outflow_good=out_good,
    )
