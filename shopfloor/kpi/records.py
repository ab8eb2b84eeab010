"""KPI points as line protocol (fields documented in docs/oee.md):

* `oee_rollup` (tags site, line, machine; time = minute start): every additive `Agg`
  field, plus `final` (true once the minute can only change through late data).
* `work_order` (tags site, line, machine, work_order, window=minute; time = minute
  start): `parts`, `scrap` counted while the order was set on the machine. Targets
  (window=order, tags site, line, work_order): `target`, `product`.
* `oee` (tags site, line, machine, window, shift): the `OeeResult` fields (None left
  out), `start_ms`, `end_ms`, `production_date`, `flags`, `final`.
* `wip` (tags site, line, window, buffer for a buffer's point): line level and Little's
  law figures, or one buffer's level and change.
"""

from __future__ import annotations

from typing import Any

from shopfloor.kpi.buckets import INT_FIELDS, NUMERIC_FIELDS, Agg
from shopfloor.kpi.calendar import ShiftInstance
from shopfloor.kpi.oee import OeeResult
from shopfloor.kpi.wip import WipResult
from shopfloor.shared import schema

_INT_RESULT = frozenset({"fe", "minor_stops", "pq", "sq", "gq", "pq_unattributed",
                         "sq_unattributed", "pq_unplanned", "sq_unplanned", "parts_total",
                         "scrap_total"})  # events and counts of parts: integers


def _tags(site: str, line: str, **extra: str) -> dict[str, str]:
    return {schema.TAG_SITE: site, schema.TAG_LINE: line, **extra}


def rollup_lines(site: str, line: str, machine: str, start_ms: int, agg: Agg,
                 final: bool) -> list[str]:
    fields: dict[str, object] = {
        name: int(getattr(agg, name)) if name in INT_FIELDS else float(getattr(agg, name))
        for name in NUMERIC_FIELDS
    }
    fields["final"] = final
    out = [schema.line(schema.OEE_ROLLUP, _tags(site, line, machine=machine), fields,
                       start_ms)]
    for order, (parts, scrap) in sorted(agg.orders.items()):
        tags = _tags(site, line, machine=machine, window="minute",
                     **{schema.TAG_WORK_ORDER: order})
        out.append(schema.line(schema.WORK_ORDER, tags,
                               {"parts": float(parts), "scrap": float(scrap)}, start_ms))
    return [x for x in out if x]


def result_fields(result: OeeResult) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in result.as_dict().items():
        if key == "flags":
            out["flags"] = ",".join(value)
        elif value is not None:
            out[key] = int(value) if key in _INT_RESULT else float(value)
    return out


def oee_line(site: str, line: str, machine: str, window: str, ts_ms: int,
             start_ms: int, end_ms: int, result: OeeResult,
             shift: ShiftInstance | None = None, final: bool = False) -> str:
    tags = _tags(site, line, machine=machine, window=window)
    fields = result_fields(result)
    fields.update(start_ms=int(start_ms), end_ms=int(end_ms), final=final)
    if shift is not None:
        tags[schema.TAG_SHIFT] = shift.name
        fields["production_date"] = shift.date.isoformat()
    text = schema.line(schema.OEE, tags, fields, ts_ms)
    assert text is not None
    return text


def wip_lines(site: str, window: str, ts_ms: int, wip: WipResult,
              shift: ShiftInstance | None = None) -> list[str]:
    """Counts of parts as integers; a level that is not known (no stocktake) is left out,
    `anchored` false and `change` say what is known."""
    extra = {schema.TAG_SHIFT: shift.name} if shift is not None else {}
    fields: dict[str, Any] = {
        "inflow": int(wip.inflow), "outflow_good": int(wip.outflow_good),
        "change": int(wip.change), "little_holds": wip.little_holds,
        "drift": wip.drift, "anchored": wip.anchored,
        "start_ms": int(wip.start_ms), "end_ms": int(wip.end_ms),
    }
    if wip.wip is not None:
        fields["wip"] = int(wip.wip)
    if wip.anchor_ms is not None:
        fields["anchor_ms"] = int(wip.anchor_ms)
    for key in ("mean_wip", "throughput_per_h", "lead_time_s"):
        value = getattr(wip, key)
        if value is not None:
            fields[key] = float(value)
    out = [schema.line(schema.WIP, _tags(site, wip.line, window=window, **extra), fields,
                       ts_ms)]
    for b in wip.buffers:
        bf: dict[str, Any] = {"change": int(b.change), "drift": b.drift}
        if b.wip is not None:
            bf["wip"] = int(b.wip)
        if b.capacity is not None:
            bf["capacity"] = int(b.capacity)
        tags = _tags(site, wip.line, window=window, **extra,
                     **{schema.TAG_BUFFER: b.upstream})
        out.append(schema.line(schema.WIP, tags, bf, ts_ms))
    return [x for x in out if x]


def target_line(site: str, line: str, order: str, target: int, product: str | None,
                ts_ms: int) -> str:
    """A work order's target quantity (what a changeover with a work order records)."""
    fields: dict[str, object] = {"target": int(target)}
    if product:
        fields["product"] = product
    tags = _tags(site, line, window="order", **{schema.TAG_WORK_ORDER: order})
    text = schema.line(schema.WORK_ORDER, tags, fields, ts_ms)
    assert text is not None
    return text
