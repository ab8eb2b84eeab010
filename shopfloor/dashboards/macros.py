"""Grafana's expansion of an InfluxQL panel query, reproduced so that the dashboards can be
proven against a real InfluxDB without a Grafana server (and checked by
`shopfloor dashboards verify`).

What Grafana does, in order: the frontend replaces template variables (`$var`, `${var}`,
`[[var]]`), formatting each value the way its InfluxDB datasource does
(`interpolateQueryExpr`: multi-value and "All" become a regex group `(a|b)` of escaped
values; a single value is regex-escaped only where it stands inside `/.../`); then the
backend replaces `$timeFilter` with `time >= {from}ms and time <= {to}ms`, and
`$__interval_ms` / `$__interval` with the interval computed from the time range and the
panel's max data points, rounded to Grafana's ladder of "nice" intervals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ALL = "$__all"

_SPECIAL = re.compile(r"([/.*+?|()\[\]{}\\])")
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")
_LEADING_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

# Grafana's rangeutil.roundInterval: (upper bound exclusive, rounded interval), in ms.
_LADDER = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
    (1500, 1000), (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000),
    (25000, 20000), (45000, 30000), (90000, 60000), (210000, 120000),
    (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
    (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
    (16200000, 10800000), (32400000, 21600000), (86400000, 43200000),
    (604800000, 86400000), (1814400000, 604800000), (3628800000, 2592000000),
)  # fmt: skip
_YEAR_MS = 31536000000
_UNITS_S = (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True)
class Variable:
    """A template variable as a dashboard's JSON declares it, with its current value
    (`ALL` for "All") and the options it offers (for "All" without a custom value)."""

    name: str
    value: str | Sequence[str]
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: Sequence[str] = field(default_factory=tuple)


def escape_regex(value: str) -> str:
    """Grafana's escapeRegex: backslash before / . * + ? | ( ) [ ] { } and backslash."""
    return _SPECIAL.sub(r"\\\1", value)


def round_interval(interval_ms: float) -> int:
    """Grafana's ladder of intervals, e.g. 7 s -> 5 s, 40 s -> 30 s (all in ms)."""
    for bound, rounded in _LADDER:
        if interval_ms < bound:
            return rounded
    return _YEAR_MS


def interval_text(interval_ms: int) -> str:
    """Grafana's secondsToHms: the largest whole unit, e.g. 60000 -> "1m", 500 -> "500ms"."""
    seconds = interval_ms / 1000
    for unit, size in _UNITS_S:
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(interval_ms)}ms"


def calculate_interval_ms(
    from_ms: int, to_ms: int, max_data_points: int = 1000, min_interval_ms: int = 1
) -> int:
    """Interval for `$__interval`: range / max data points, rounded, never below the
    datasource's (or panel's) minimum interval."""
    return max(round_interval((to_ms - from_ms) / max_data_points), min_interval_ms)


def _in_regex(query: str, name: str) -> bool:
    """Does `$name` stand inside a /regex/ after =~ or !~ (where Grafana escapes it)?"""
    pattern = rf"[=!]~\s*/[^/]*(\${name}\b|\$\{{{name}\}}|\[\[{name}\]\])[^/]*/"
    return re.search(pattern, query) is not None


def format_value(value: str | Sequence[str], variable: Variable, query: str) -> str:
    """InfluxDB datasource's interpolateQueryExpr for one variable's value."""
    if isinstance(value, str):
        if _LEADING_NUMBER.match(value):  # JS parseFloat succeeds: left as is
            return value
        if variable.multi or _in_regex(query, variable.name):
            return escape_regex(value)
        return value
    return "(" + "|".join(escape_regex(v) for v in value) + ")"


def _current(variable: Variable) -> tuple[str | Sequence[str], bool]:
    """(value, raw): the value to format, or a custom all-value used verbatim."""
    value = variable.value
    selected_all = value == ALL or (not isinstance(value, str) and ALL in value)
    if not selected_all:
        return value, False
    if variable.all_value:
        return variable.all_value, True
    return [o for o in variable.options if o != ALL], False


def interpolate(query: str, variables: Mapping[str, Variable]) -> str:
    """Replace every known `$var` / `${var}` / `[[var]]`; unknown names stay as they are."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        value, raw = _current(variable)
        if raw:
            return str(value)
        return format_value(value, variable, query)

    return _VARIABLE.sub(replace, query)


def expand(
    query: str,
    variables: Mapping[str, Variable],
    from_ms: int,
    to_ms: int,
    interval_ms: int,
) -> str:
    """The query as Grafana sends it to InfluxDB: variables, then the backend's macros
    ($timeFilter, $__interval_ms before $__interval, and the legacy $interval)."""
    text = interpolate(query, variables)
    text = text.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    text = text.replace("$__timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    text = text.replace("$__interval_ms", str(interval_ms))
    text = text.replace("$__interval", interval_text(interval_ms))
    return text.replace("$interval", interval_text(interval_ms))
