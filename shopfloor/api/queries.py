"""InfluxQL built from validated parts only: identifiers are plant-file names or schema
constants (quoted with `quote_ident`), strings go through `quote_string`, times are
integers (epoch ms), intervals whole seconds. No text from a caller is pasted in raw."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from shopfloor.api.errors import Invalid
from shopfloor.shared import schema
from shopfloor.shared.schema import quote_ident, quote_string

MAX_WINDOW = dt.timedelta(days=400)
MAX_BUCKETS = 20_000
# InfluxDB stores int64 nanoseconds (1677..2262); keep well inside.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


class Aggregation(StrEnum):
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    FIRST = "first"
    LAST = "last"
    SUM = "sum"
    COUNT = "count"

    @property
    def numeric_only(self) -> bool:
        return self in (Aggregation.MEAN, Aggregation.SUM)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window [start, end), both timezone-aware."""

    start: dt.datetime
    end: dt.datetime

    @classmethod
    def of(cls, start: dt.datetime | None, end: dt.datetime | None,
           default: dt.timedelta, now: dt.datetime) -> Window:
        end = end or now
        start = start or end - default
        if start.tzinfo is None or end.tzinfo is None:
            raise Invalid("times need a UTC offset (ISO 8601, e.g. 2026-11-25T20:00:00Z)",
                          "bad_window")
        if start >= end:
            raise Invalid("start must be before end", "bad_window")
        if start < EARLIEST or end > LATEST:
            raise Invalid(f"times must lie between {EARLIEST:%Y} and {LATEST:%Y}", "bad_window")
        if end - start > MAX_WINDOW:
            raise Invalid(f"window longer than {MAX_WINDOW.days} days", "bad_window")
        return cls(start, end)

    def raw(self, max_raw_s: float) -> Window:
        """This window, when raw samples over it are allowed (`api.max_raw_window_s`):
        a raw read scans every sample of the window, however small the page."""
        span_s = (self.end - self.start).total_seconds()
        if span_s > max_raw_s:
            raise Invalid(f"raw window of {span_s:g} s is longer than {max_raw_s:g} s "
                          "(api.max_raw_window_s): give interval_s or a shorter window",
                          "window_too_large")
        return self

    def where(self) -> str:
        return f"time >= {_ms(self.start)}ms AND time < {_ms(self.end)}ms"


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _eq(tag: str, value: str) -> str:
    return f"{quote_ident(tag)} = {quote_string(value)}"


def _page(limit: int, offset: int) -> str:
    return f" LIMIT {int(limit)} OFFSET {int(offset)}"


def history(site: str, machine: str, points: list[str], window: Window, interval_s: int | None,
            aggregation: Aggregation, limit: int, offset: int) -> str:
    """A machine's points over a window, raw or aggregated per `interval_s` buckets."""
    if interval_s is None:
        select = ", ".join(quote_ident(p) for p in points)
        group = ""
    else:
        if (window.end - window.start).total_seconds() / interval_s > MAX_BUCKETS:
            raise Invalid(f"more than {MAX_BUCKETS} buckets: widen interval_s", "bad_window")
        select = ", ".join(f"{aggregation.value}({quote_ident(p)}) AS {quote_ident(p)}"
                           for p in points)
        group = f" GROUP BY time({int(interval_s)}s) fill(none)"
    return (f"SELECT {select} FROM {quote_ident(schema.TELEMETRY)} WHERE "
            f"{_eq(schema.TAG_SITE, site)} AND {_eq(schema.TAG_MACHINE, machine)} AND "
            f"{window.where()}{group}{_page(limit, offset)}")


def state_changes(site: str, machine: str, window: Window, limit: int) -> str:
    """State changes inside the window, oldest first."""
    return (f"SELECT * FROM {quote_ident(schema.MACHINE_STATE)} WHERE "
            f"{_eq(schema.TAG_SITE, site)} AND {_eq(schema.TAG_MACHINE, machine)} AND "
            f"{window.where()} ORDER BY time ASC LIMIT {int(limit)}")


def state_before(site: str, machine: str, moment: dt.datetime) -> str:
    """The last state change before `moment` (the state in force when a window opens)."""
    return (f"SELECT * FROM {quote_ident(schema.MACHINE_STATE)} WHERE "
            f"{_eq(schema.TAG_SITE, site)} AND {_eq(schema.TAG_MACHINE, machine)} AND "
            f"time < {_ms(moment)}ms ORDER BY time DESC LIMIT 1")


@dataclass(frozen=True, slots=True)
class AuditFilter:
    machine: str | None = None
    line: str | None = None
    action: str | None = None
    outcome: str | None = None
    requested_by: str | None = None
    command_id: str | None = None
    lines_allowed: frozenset[str] | None = None  # a line-restricted key sees only these


def audit(site: str, filters: AuditFilter, window: Window | None, limit: int,
          offset: int) -> str:
    """Audit entries, newest first."""
    conditions = [_eq(schema.TAG_SITE, site)]
    for tag in ("machine", "line", "action", "outcome", "requested_by"):
        value = getattr(filters, tag)
        if value is not None:
            conditions.append(_eq(tag, value))
    if filters.command_id is not None:
        conditions.append(_eq("command_id", filters.command_id))
    if filters.lines_allowed is not None:
        allowed = [_eq(schema.TAG_LINE, ln) for ln in sorted(filters.lines_allowed)]
        conditions.append("(" + (" OR ".join(allowed) or _eq(schema.TAG_LINE, "")) + ")")
    if window is not None:
        conditions.append(window.where())
    return (f"SELECT * FROM {quote_ident(schema.CONTROL_AUDIT)} WHERE "
            f"{' AND '.join(conditions)} ORDER BY time DESC{_page(limit, offset)}")


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    machine: str | None = None
    line: str | None = None
    rule: str | None = None
    severity: str | None = None
    lines_allowed: frozenset[str] | None = None  # a line-restricted key sees only these

    def conditions(self, site: str) -> list[str]:
        conditions = [_eq(schema.TAG_SITE, site)]
        for tag in (schema.TAG_MACHINE, schema.TAG_LINE, schema.TAG_RULE, schema.TAG_SEVERITY):
            value = getattr(self, tag)
            if value is not None:
                conditions.append(_eq(tag, value))
        if self.lines_allowed is not None:
            allowed = [_eq(schema.TAG_LINE, ln) for ln in sorted(self.lines_allowed)]
            conditions.append("(" + (" OR ".join(allowed) or _eq(schema.TAG_LINE, "")) + ")")
        return conditions


def alarm_history(site: str, filters: AlarmFilter, window: Window, limit: int,
                  offset: int) -> str:
    """Alarm transitions (measurement `alarm`), newest first."""
    where = " AND ".join([*filters.conditions(site), window.where()])
    return (f"SELECT * FROM {quote_ident(schema.ALARM)} WHERE {where} "
            f"ORDER BY time DESC{_page(limit, offset)}")


def alarm_latest(site: str, filters: AlarmFilter) -> str:
    """The last transition of every alarm instance (one series per machine x rule)."""
    where = " AND ".join(filters.conditions(site))
    instance = ", ".join(quote_ident(t) for t in schema.ALARM_INSTANCE_TAGS)
    return (f"SELECT * FROM {quote_ident(schema.ALARM)} WHERE {where} "
            f"GROUP BY {instance} ORDER BY time DESC LIMIT 1")
