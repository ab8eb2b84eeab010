"""Live WIP of one line from the stations' cached minute buckets (`MachineLive`).

The levels count from the stocktakes (docs/oee.md "WIP"): the counts from an older
stocktake to the window start come from the store once per window start (summed
rollups), the counts inside the window from the minute cache; a stocktake inside the
window splits its minute at its instant (the part after it read from the store). Little's
law is computed over the window (the rolling window, minute-aligned at its start)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence

from shopfloor.kpi.buckets import Agg
from shopfloor.kpi.livestate import MachineLive
from shopfloor.kpi.wip import Anchor, WipResult, compute_wip
from shopfloor.shared.plant import Line

Totals = Callable[[str, int, int], Agg]  # station, lo, hi -> aggregate from the store


class LineWip:
    def __init__(self, line: Line) -> None:
        self.line = line
        self._base_key: tuple[int, int] | None = None
        self._base: dict[str, tuple[float, float]] = {}
        self._splits: dict[tuple[str, int, int], tuple[float, float]] = {}

    def invalidate(self, lo: int, hi: int) -> None:
        """Samples changed [lo, hi): drop the counts from the store that they touch (the
        anchor-to-window counts, the parts of minutes after a stocktake)."""
        if self._base_key is not None and lo < self._base_key[1] and self._base_key[0] < hi:
            self._base_key = None
        self._splits = {k: v for k, v in self._splits.items() if not (lo < k[2] and k[1] < hi)}

    def result(self, anchors: Sequence[Anchor], start: int, wm: int,
               machines: Mapping[str, MachineLive], totals: Totals) -> WipResult | None:
        """WIP at `wm`, Little's law over [start, wm); None when a station's cache lacks a
        minute of the window (the caller fills it and asks again)."""
        per_station = {}
        for station in self.line.stations:
            pieces = machines[station].pieces(start, wm)
            if pieces is None:
                return None
            per_station[station] = pieces
        edges = [p[0] for p in per_station[self.line.stations[0]]] + [wm]
        if any([p[0] for p in pieces] + [wm] != edges for pieces in per_station.values()):
            return None  # stations not recomputed to the same instant yet
        if len(edges) < 2:
            return None
        counts = {s: [(p[2].parts_total, p[2].scrap_total) for p in pieces]
                  for s, pieces in per_station.items()}
        self._splits = {k: v for k, v in self._splits.items() if k[1] > start}  # bounded
        for anchor in anchors:  # a stocktake inside a bucket: split it at its instant
            t = anchor.ts_ms
            k = bisect_right(edges, t) - 1
            if start < t < wm and edges[k] != t:
                for station in self.line.stations:
                    after_parts, after_scrap = self._split(station, t, edges[k + 1], totals)
                    parts, scrap = counts[station][k]
                    counts[station][k:k + 1] = [(parts - after_parts, scrap - after_scrap),
                                                (after_parts, after_scrap)]
                edges.insert(k + 1, t)
        if anchors and anchors[0].ts_ms < start:
            base = self._counts_before(anchors[0].ts_ms, start, totals)
            edges = [anchors[0].ts_ms, *edges]
            counts = {s: [base[s], *c] for s, c in counts.items()}
        return compute_wip(self.line, edges, counts, anchors, start)

    def _split(self, station: str, lo: int, hi: int, totals: Totals) -> tuple[float, float]:
        """(parts, scrap) of [lo, hi) from the store, kept until samples there change."""
        key = (station, lo, hi)
        if key not in self._splits:
            agg = totals(station, lo, hi)
            self._splits[key] = (agg.parts_total, agg.scrap_total)
        return self._splits[key]

    def _counts_before(self, lo: int, hi: int, totals: Totals) -> dict[str, tuple[float, float]]:
        if self._base_key != (lo, hi):
            self._base = {}
            for station in self.line.stations:
                agg = totals(station, lo, hi)
                self._base[station] = (agg.parts_total, agg.scrap_total)
            self._base_key = (lo, hi)
        return self._base
