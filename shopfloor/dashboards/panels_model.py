"""Reading a built dashboard's JSON: its panels' queries and its variables, as Grafana
would see them. Pure functions of the JSON model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shopfloor.dashboards.macros import ALL, Variable, calculate_interval_ms
from shopfloor.shared import schema

DEFAULT_MAX_DATA_POINTS = 1000
DATASOURCE_MIN_INTERVAL_MS = 10_000
"""The provisioned datasource's `timeInterval` (10s): the floor of `$__interval` for
panels that set no interval of their own (Grafana: panel interval, else datasource's)."""


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, with what the panel needs of its result."""

    dashboard: str
    panel: str
    panel_type: str
    query: str
    result_format: str
    min_interval_ms: int
    x_field: str | None = None
    grouped_fields: tuple[str, ...] = ()
    """Fields a groupBy transformation of the panel works on (its result's numbers come
    from the transformation, not from the query)."""

    @property
    def label(self) -> str:
        return f"{self.dashboard} / {self.panel}"

    @property
    def lists_events(self) -> bool:
        """An annotation, or a panel over events only (downtime events, alarm
        transitions): a range without events leaves it empty, which is right."""
        measurements = set(re.findall(r'\bFROM\s+"([^"]+)"', self.query))
        return self.panel_type == "annotation" or (
            bool(measurements) and measurements <= schema.EVENT_MEASUREMENTS)


@dataclass(frozen=True)
class VariableQuery:
    name: str
    query: str
    multi: bool
    include_all: bool
    all_value: str | None


def interval_ms(text: str | None) -> int:
    """Panel min interval ("1m", "30s") in ms; the datasource's when unset."""
    if not text:
        return DATASOURCE_MIN_INTERVAL_MS
    units = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    raise ValueError(f"unsupported interval {text!r}")


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def _grouped_fields(panel: dict[str, Any]) -> tuple[str, ...]:
    fields: list[str] = []
    for step in panel.get("transformations") or []:
        if step.get("id") == "groupBy":
            fields += list(step["options"]["fields"])
    return tuple(fields)


def panel_queries(model: dict[str, Any]) -> list[PanelQuery]:
    out = []
    for panel in walk_panels(model.get("panels", [])):
        for target in panel.get("targets", []):
            out.append(
                PanelQuery(
                    dashboard=model["title"],
                    panel=panel.get("title", ""),
                    panel_type=panel["type"],
                    query=target["query"],
                    result_format=target.get("resultFormat", "time_series"),
                    min_interval_ms=interval_ms(panel.get("interval")),
                    x_field=(panel.get("options") or {}).get("xField"),
                    grouped_fields=_grouped_fields(panel),
                )
            )
    return out


def annotation_queries(model: dict[str, Any]) -> list[PanelQuery]:
    """The InfluxQL annotations (e.g. alarm transitions), as queries Grafana runs over the
    dashboard's time range (Grafana's built-in annotations have no query)."""
    return [
        PanelQuery(dashboard=model["title"], panel=f"annotation {a.get('name', '')}",
                   panel_type="annotation", query=a["query"], result_format="table",
                   min_interval_ms=DATASOURCE_MIN_INTERVAL_MS)
        for a in model.get("annotations", {}).get("list", []) if a.get("query")
    ]


def variable_queries(model: dict[str, Any]) -> list[VariableQuery]:
    return [
        VariableQuery(v["name"], v["query"], bool(v.get("multi")), bool(v.get("includeAll")),
                      v.get("allValue") or None)
        for v in model.get("templating", {}).get("list", [])
        if v.get("type") == "query"
    ]


def bind(declared: VariableQuery, options: list[str], value: str | list[str] = ALL) -> Variable:
    """A declared variable with the values its query returned and a current selection
    (default: "All" where the variable offers it, else its first option)."""
    if value == ALL and not declared.include_all:
        value = options[0] if options else ""
    return Variable(declared.name, value, declared.multi, declared.include_all,
                    declared.all_value, tuple(options))


def interval_for(query: PanelQuery, from_ms: int, to_ms: int) -> int:
    return calculate_interval_ms(from_ms, to_ms, DEFAULT_MAX_DATA_POINTS, query.min_interval_ms)
