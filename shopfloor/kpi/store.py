"""The KPI engine's InfluxDB shell: reads telemetry, rollups and stocktakes with InfluxQL
over /query, writes KPI points as line protocol. Built on the shared InfluxDB module
(shopfloor.shared.influx: v1 or v2 write API from /ping, auth, InfluxQL), like every
other component.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from shopfloor.kpi.buckets import NUMERIC_FIELDS, Agg
from shopfloor.kpi.classified import Classified
from shopfloor.kpi.errors import KpiStoreError, KpiStoreRejected
from shopfloor.kpi.model import KpiMachineSpec, Sample
from shopfloor.kpi.wip import Anchor
from shopfloor.shared import schema
from shopfloor.shared.influx import InfluxError, LinesRejected, LineWriter, open_writer
from shopfloor.shared.plant import Plant
from shopfloor.shared.reasons import Loss
from shopfloor.shared.schema import quote_ident as qi
from shopfloor.shared.schema import quote_string as qs

log = logging.getLogger(__name__)
LINE_TOTAL = "_line"  # wip_anchor buffer tag of a whole-line count (see shopfloor.api)
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
LOOKAROUND_MS = (3_600_000, 2 * 86_400_000, 31 * 86_400_000)  # nearest-sample search
CLASSIFIED_LOOKBACK_MS = 7 * 86_400_000  # a classified part starting this long before counts
MARGIN_MS = 300_000  # fetched beyond a range, where the nearest sample outside usually is


def _where(site: str, **tags: str) -> str:
    parts = [f"{qi(schema.TAG_SITE)} = {qs(site)}"]
    parts += [f"{qi(k)} = {qs(v)}" for k, v in tags.items()]
    return " AND ".join(parts)


def _span(lo: int | None, hi: int | None) -> str:
    out = []
    if lo is not None:
        out.append(f"time >= {int(lo)}ms")
    if hi is not None:
        out.append(f"time < {int(hi)}ms")
    return " AND ".join(out)


class KpiStore:
    """InfluxDB access for one plant. `writer` is any LineWriter (write + InfluxQL)."""

    def __init__(self, plant: Plant, writer: LineWriter) -> None:
        self.plant = plant
        self.site = plant.site.id
        self.writer = writer

    @staticmethod
    def open(plant: Plant) -> KpiStore:
        try:
            return KpiStore(plant, open_writer(plant.database))
        except InfluxError as exc:
            raise KpiStoreError(str(exc)) from exc

    def close(self) -> None:
        self.writer.close()

    def query(self, influxql: str) -> list[dict[str, Any]]:
        try:
            return self.writer.query(influxql)
        except InfluxError as exc:
            raise KpiStoreError(str(exc)) from exc

    def write(self, lines: Sequence[str]) -> None:
        if not lines:
            return
        try:
            self.writer.write(list(lines))
        except LinesRejected as exc:
            raise KpiStoreRejected(str(exc)) from exc
        except InfluxError as exc:
            raise KpiStoreError(str(exc)) from exc

    # -- telemetry ---------------------------------------------------------------------

    def samples(self, spec: KpiMachineSpec, lo: int, hi: int) -> list[Sample]:
        """Telemetry of one machine in [lo, hi), plus the nearest sample on each side."""
        points = [p for p in (spec.state_point, spec.total_point, spec.reject_point,
                              spec.product_point, spec.work_order_point) if p]
        fields = ", ".join(qi(p) for p in [*dict.fromkeys(points), schema.SEQ_FIELD])
        base = (f"SELECT {fields} FROM {qi(schema.TELEMETRY)} WHERE "
                f"{_where(self.site, machine=spec.id)}")
        rows = self._rows(f"{base} AND {_span(lo - MARGIN_MS, hi + MARGIN_MS)}")
        inside = [r for r in rows if lo <= r["time"] < hi]
        before = [r for r in rows if r["time"] < lo][-1:]
        after = [r for r in rows if r["time"] >= hi][:1]
        # The nearest samples outside, searched in growing steps when the margin has none
        # (an open-ended `time < lo ORDER BY time DESC` scans all history in InfluxDB 1.x).
        for step in () if before else LOOKAROUND_MS:
            before = self._rows(f"{base} AND {_span(lo - step, lo)} ORDER BY time DESC LIMIT 1")
            if before:
                break
        for step in () if after else LOOKAROUND_MS:
            after = self._rows(f"{base} AND {_span(hi, hi + step)} ORDER BY time ASC LIMIT 1")
            if after:
                break
        rows = before + inside + after
        return [_sample(row) for row in rows]

    def _rows(self, influxql: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for series in self.query(influxql):
            cols = series["columns"]
            out.extend(dict(zip(cols, values, strict=True)) for values in series["values"])
        return out

    # -- rollups -----------------------------------------------------------------------

    def rollup_sum(self, machine: str, lo: int, hi: int) -> tuple[Agg, int]:
        """Sum of the final minute rollups in [lo, hi), and how many minutes were summed."""
        sums = ", ".join(f"sum({qi(f)}) AS {qi(f)}" for f in NUMERIC_FIELDS)
        q = (f"SELECT {sums}, count({qi('pot_ms')}) AS n FROM {qi(schema.OEE_ROLLUP)} "
             f"WHERE {_where(self.site, machine=machine)} AND {qi('final')} = true "
             f"AND {_span(lo, hi)}")
        rows = self._rows(q)
        if not rows:
            return Agg(), 0
        return Agg.from_numeric(rows[0]), int(rows[0].get("n") or 0)

    def rollups(self, machine: str, lo: int, hi: int) -> dict[int, Agg]:
        """Final minute rollups in [lo, hi) by minute start, with their work-order counts."""
        fields = ", ".join(qi(f) for f in NUMERIC_FIELDS)
        q = (f"SELECT {fields} FROM {qi(schema.OEE_ROLLUP)} WHERE "
             f"{_where(self.site, machine=machine)} AND {qi('final')} = true "
             f"AND {_span(lo, hi)}")
        out = {int(row["time"]): Agg.from_numeric(row) for row in self._rows(q)}
        q = (f"SELECT {qi('parts')}, {qi('scrap')} FROM {qi(schema.WORK_ORDER)} WHERE "
             f"{_where(self.site, machine=machine, window='minute')} AND {_span(lo, hi)} "
             f"GROUP BY {qi(schema.TAG_WORK_ORDER)}")
        for series in self.query(q):
            order = (series.get("tags") or {}).get(schema.TAG_WORK_ORDER, "")
            for ts, parts, scrap in series["values"]:
                if int(ts) in out and order:
                    out[int(ts)].orders[order] = [float(parts or 0), float(scrap or 0)]
        return out

    def rollup_holes(self, machine: str, lo: int, hi: int) -> list[tuple[int, int]]:
        """The minutes of [lo, hi) (minute-aligned) without a final rollup, as ranges.
        Work: one row per hour that has rollups, then the minutes of the hours that are
        only partly covered (never a row per minute of the whole range)."""
        where = (f"{_where(self.site, machine=machine)} AND {qi('final')} = true "
                 f"AND {_span(lo, hi)}")
        rows = self._rows(f"SELECT count({qi('pot_ms')}) AS n FROM {qi(schema.OEE_ROLLUP)} "
                          f"WHERE {where} GROUP BY time(1h) fill(none)")
        holes: list[tuple[int, int]] = []
        partial: list[tuple[int, int]] = []
        cursor = lo
        for row in rows:
            start = max(int(row["time"]), lo)
            end = min(int(row["time"]) + HOUR_MS, hi)
            if start > cursor:
                holes.append((cursor, start))
            if int(row["n"] or 0) < (end - start) // MINUTE_MS:
                if partial and partial[-1][1] == start:
                    partial[-1] = (partial[-1][0], end)
                else:
                    partial.append((start, end))
            cursor = max(cursor, end)
        if cursor < hi:
            holes.append((cursor, hi))
        for a, b in partial:
            have = {int(r["time"]) for r in self._rows(
                f"SELECT {qi('pot_ms')} FROM {qi(schema.OEE_ROLLUP)} WHERE "
                f"{_where(self.site, machine=machine)} AND {qi('final')} = true "
                f"AND {_span(a, b)}")}
            holes += [(t, t + MINUTE_MS) for t in range(a, b, MINUTE_MS) if t not in have]
        return sorted(holes)

    # -- downtime classifications (the API's `downtime` measurement) --------------------

    def classified(self, machine: str | None, lo: int, hi: int) -> dict[str, list[Classified]]:
        """Parts classified planned or setup that overlap [lo, hi), by machine (all
        machines when None). A part still open (end_ms 0) lasts until `hi`."""
        where = _where(self.site) if machine is None else _where(self.site, machine=machine)
        losses = " OR ".join(f"{qi(schema.TAG_LOSS)} = {qs(str(x))}"
                             for x in (Loss.PLANNED, Loss.SETUP))
        q = (f"SELECT {qi('end_ms')}, {qi(schema.TAG_MACHINE)}, {qi(schema.TAG_LOSS)} FROM "
             f"{qi(schema.DOWNTIME)} WHERE {where} AND ({losses}) AND {qi('active')} = true "
             f"AND {_span(lo - CLASSIFIED_LOOKBACK_MS, hi)}")
        out: dict[str, list[Classified]] = {}
        for row in self._rows(q):
            end = int(row.get("end_ms") or 0) or hi
            if end > lo:
                out.setdefault(str(row["machine"]), []).append(
                    Classified(int(row["time"]), end, Loss(row["loss"])))
        return out

    # -- stocktakes and work orders ----------------------------------------------------

    def anchor(self, line: str, at_ms: int) -> Anchor | None:
        """The latest stocktake of `line` at or before `at_ms` (see shopfloor.api)."""
        return self._edge_anchors(line, f"time <= {int(at_ms)}ms", "last", max).get(line)

    def anchor_after(self, line: str, after_ms: int) -> Anchor | None:
        """The first stocktake of `line` after `after_ms` (for levels before it)."""
        return self._edge_anchors(line, f"time > {int(after_ms)}ms", "first", min).get(line)

    def anchors(self, line: str, lo: int, hi: int) -> list[Anchor]:
        """The stocktakes that count for the levels of [lo, hi]: the latest at or before
        `lo` (however old: only its count is read) and every one after `lo` up to `hi`,
        sorted by time."""
        return self.anchors_by_line(lo, hi, line).get(line, [])

    def anchors_by_line(self, lo: int, hi: int, line: str | None = None
                        ) -> dict[str, list[Anchor]]:
        """`anchors` of every line (or of `line`) in two queries, by line."""
        out = {k: [a] for k, a in self._edge_anchors(line, f"time <= {int(lo)}ms", "last",
                                                      max).items()}
        where = _where(self.site) if line is None else _where(self.site, line=line)
        q = (f"SELECT {qi('count')} FROM {qi(schema.WIP_ANCHOR)} WHERE {where} "
             f"AND time > {int(lo)}ms AND time <= {int(hi)}ms "
             f"GROUP BY {qi(schema.TAG_LINE)}, {qi(schema.TAG_BUFFER)}")
        by_time: dict[str, dict[int, list[tuple[str, int]]]] = {}
        for series in self.query(q):
            tags = series.get("tags") or {}
            times = by_time.setdefault(tags.get(schema.TAG_LINE, ""), {})
            for ts, c in series["values"]:
                times.setdefault(int(ts), []).append((tags.get(schema.TAG_BUFFER, ""), int(c)))
        for key, times in by_time.items():
            out.setdefault(key, []).extend(_anchor(ts, e) for ts, e in sorted(times.items()))
        return out

    def _edge_anchors(self, line: str | None, condition: str, selector: str,
                      pick: Callable[[Iterable[int]], int]) -> dict[str, Anchor]:
        """Per line, the stocktake nearest a bound: `last` (newest) points at or before
        it, or `first` (oldest) points after it, per buffer; a stocktake is the points at
        one instant (`pick`: max or min of their times)."""
        where = _where(self.site) if line is None else _where(self.site, line=line)
        q = (f"SELECT {selector}({qi('count')}) AS {qi('count')} FROM "
             f"{qi(schema.WIP_ANCHOR)} WHERE {where} AND {condition} "
             f"GROUP BY {qi(schema.TAG_LINE)}, {qi(schema.TAG_BUFFER)}")
        points: dict[str, list[tuple[int, str, int]]] = {}
        for series in self.query(q):
            tags = series.get("tags") or {}
            points.setdefault(tags.get(schema.TAG_LINE, ""), []).extend(
                (int(ts), tags.get(schema.TAG_BUFFER, ""), int(c)) for ts, c in series["values"])
        out = {}
        for key, found in points.items():
            when = pick(ts for ts, _, _ in found)
            out[key] = _anchor(when, [(b, c) for ts, b, c in found if ts == when])
        return out

    def targets(self, line: str) -> dict[str, int]:
        """Work-order targets recorded for a line (work_order, window=order, field target)."""
        q = (f"SELECT last({qi('target')}) AS target FROM {qi(schema.WORK_ORDER)} WHERE "
             f"{_where(self.site, line=line, window='order')} "
             f"GROUP BY {qi(schema.TAG_WORK_ORDER)}")
        out = {}
        for series in self.query(q):
            order = (series.get("tags") or {}).get(schema.TAG_WORK_ORDER, "")
            for _, target in series["values"]:
                if order and target is not None:
                    out[order] = int(target)
        return out


def _anchor(ts_ms: int, entries: list[tuple[str, int]]) -> Anchor:
    """One stocktake from its points (`_line`: the line count; else one per buffer)."""
    current = dict(entries)
    total = current.pop(LINE_TOTAL, sum(current.values()))
    return Anchor(ts_ms, total, current)


def _sample(row: dict[str, Any]) -> Sample:
    ts = int(row.pop("time"))
    seq = row.pop(schema.SEQ_FIELD, None)
    return Sample(ts, {k: v for k, v in row.items() if v is not None}, int(seq or 0))


def chunks(lines: Iterable[str], size: int = 5000) -> Iterable[list[str]]:
    batch: list[str] = []
    for text in lines:
        batch.append(text)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
