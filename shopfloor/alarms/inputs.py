"""What the rule engine reads besides machine state and agent status, and each rule's
condition on it, pure (no clock, no I/O):

- the collector's retained KPI topics (docs/oee.md, "MQTT"): a machine's `kpi` for
  `coverage_low` and `shift_kpi_low`, a line's `kpi` (WIP) for `buffer_wip`;
- the InfluxDB measurement `downtime` (the API's downtime events) and the machine's
  ongoing stop for `downtime_unclassified`;
- the InfluxDB measurement `collector_stats` for `collector_lag` and `dead_letters`.

The KPI payloads are read through views that take only the fields a rule needs and
ignore the rest (the collector's KPI engine owns those payloads and may add to them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shopfloor.shared import schema
from shopfloor.shared.alarm_rules import KpiWindow, Rule
from shopfloor.shared.reasons import UNCLASSIFIED


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class KpiRatios(_View):
    """One KPI window of a machine's `kpi` payload: its start and the ratios (0..1,
    None when undefined: no data, not scheduled)."""

    start: AwareDatetime
    coverage: float | None = None
    availability: float | None = None
    performance: float | None = None
    quality: float | None = None
    oee: float | None = None


class MachineKpi(_View):
    """`shopfloor/v1/{site}/{line}/{machine}/kpi`: `ts` is the KPI engine's watermark
    (event time); no `shift` outside every shift."""

    v: Literal[1]
    ts: AwareDatetime
    shift: KpiRatios | None = None
    rolling: KpiRatios


class BufferLevel(_View):
    upstream: str
    wip: int | None = None


class LineWipView(_View):
    buffers: list[BufferLevel] = []


class LineKpi(_View):
    """`shopfloor/v1/{site}/{line}/kpi`: the line's WIP (None: never counted)."""

    v: Literal[1]
    ts: AwareDatetime
    wip: LineWipView | None = None


def _below(value: float | None, rule: Rule) -> bool:
    return value is not None and value * 100.0 < rule.below_pct


def coverage_low(rule: Rule, kpi: MachineKpi) -> bool:
    """The coverage of the rule's window is below `below_pct` (an undefined coverage,
    e.g. outside every shift, is not low)."""
    window = kpi.rolling if rule.window is KpiWindow.ROLLING else kpi.shift
    return window is not None and _below(window.coverage, rule)


def shift_kpi_low(rule: Rule, kpi: MachineKpi) -> bool:
    """`after_shift_s` into the shift, its `kpi` is below `below_pct` (an undefined ratio
    is not low: coverage_low says when data is missing)."""
    shift = kpi.shift
    if shift is None or (kpi.ts - shift.start).total_seconds() < rule.after_shift_s:
        return False
    return _below(getattr(shift, rule.kpi.value), rule)


def buffer_outside(rule: Rule, level: int | None) -> bool:
    """The buffer's level is above `max_parts` or below `min_parts` (an unknown level,
    no stocktake yet, is neither)."""
    if level is None:
        return False
    return (rule.max_parts is not None and level > rule.max_parts) or \
        (rule.min_parts is not None and level < rule.min_parts)


# InfluxDB: downtime events and collector stats


@dataclass(frozen=True, slots=True)
class StoredDowntime:
    """What the `downtime` measurement holds (active parts only): per machine the start
    times (s) of its unclassified parts, and the ids of events with a classified part.
    The API writes a finished event's parts, and an ongoing event's once someone
    classifies or splits it; an ongoing event nobody touched is only in the machine's
    state (docs/alarms.md)."""

    unclassified: dict[str, list[float]]
    classified: frozenset[str]


def downtime_query(site: str, since_ms: int) -> str:
    """The active parts of the site's downtime events that started after `since_ms`."""
    return (f"SELECT {schema.quote_ident('event')}, {schema.quote_ident('active')} "
            f"FROM {schema.DOWNTIME} "
            f"WHERE {schema.quote_ident(schema.TAG_SITE)} = {schema.quote_string(site)} "
            f"AND time >= {since_ms}ms GROUP BY {schema.quote_ident(schema.TAG_MACHINE)}, "
            f"{schema.quote_ident(schema.TAG_REASON)}")


def stored_downtime(series: Iterable[dict[str, Any]]) -> StoredDowntime:
    """The `StoredDowntime` of a `downtime_query` answer (tombstones left out)."""
    unclassified: dict[str, list[float]] = {}
    classified: set[str] = set()
    for one in series:
        tags = one.get("tags") or {}
        machine, reason = tags.get(schema.TAG_MACHINE), tags.get(schema.TAG_REASON)
        if not machine or not reason:
            continue
        for time_ms, event, active in one.get("values", []):
            if active is not True:
                continue
            if reason == UNCLASSIFIED:
                unclassified.setdefault(machine, []).append(time_ms / 1000)
            elif isinstance(event, str):
                classified.add(event)
    return StoredDowntime(unclassified, frozenset(classified))


@dataclass(frozen=True, slots=True)
class StatsPoint:
    """One `collector_stats` point: the collector's clock (s), its cumulative dead
    letters, and the period's p99 lag (None: no telemetry written in the period)."""

    at: float
    dead_letters: int
    lag_p99_s: float | None


STATS_FIELDS = ("dead_letters", "lag_p99_s")


def stats_query(site: str, after_ms: int) -> str:
    """The site's collector_stats points after `after_ms`, per collector, oldest first."""
    fields = ", ".join(schema.quote_ident(f) for f in STATS_FIELDS)
    return (f"SELECT {fields} FROM {schema.COLLECTOR_STATS} "
            f"WHERE {schema.quote_ident(schema.TAG_SITE)} = {schema.quote_string(site)} "
            f"AND time > {after_ms}ms GROUP BY {schema.quote_ident(schema.TAG_COLLECTOR)}")


def stats_points(series: Iterable[dict[str, Any]]) -> dict[str, list[StatsPoint]]:
    """Collector -> its points in time order, from `stats_query`."""
    points: dict[str, list[StatsPoint]] = {}
    for one in series:
        collector = (one.get("tags") or {}).get(schema.TAG_COLLECTOR)
        if not collector:
            continue
        for time_ms, dead, lag in one.get("values", []):
            if isinstance(dead, int | float):
                points.setdefault(collector, []).append(StatsPoint(
                    time_ms / 1000, int(dead),
                    float(lag) if isinstance(lag, int | float) else None))
    return points


def dead_letter_increase(previous: int | None, current: int) -> int:
    """Dead letters between two points of a collector; its counters restart at 0 with it,
    so a drop means a restart and the new count is the increase since."""
    if previous is None:
        return 0
    return current - previous if current >= previous else current
