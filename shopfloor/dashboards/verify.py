"""Run every panel's and variable's query of the built dashboards against a real InfluxDB,
macros expanded as Grafana expands them, and check each result has the shape its panel
needs. Used by the tests and by `shopfloor dashboards verify` on a live system."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from shopfloor.dashboards.macros import ALL, Variable, expand, interpolate
from shopfloor.dashboards.panels_model import (
    PanelQuery,
    annotation_queries,
    bind,
    interval_for,
    panel_queries,
    variable_queries,
)
from shopfloor.shared.influx import DatabaseUnavailable, InfluxQLClient
from shopfloor.shared.plant import Database

NUMERIC_PANELS = {"timeseries", "bargauge", "barchart"}
"""Panels that draw numbers only (stat and state-timeline show text values too)."""


@dataclass
class Outcome:
    """One query's result: the expanded query and the problems found (none = fine)."""

    label: str
    query: str
    series: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def influxql_client(url: str, database: str, token: str | None = None,
                    timeout_s: float = 30.0) -> InfluxQLClient:
    """The shared InfluxQL client (shopfloor.shared.influx) for verifying dashboards."""
    return InfluxQLClient(Database(url=url, database=database, timeout_s=timeout_s,
                                   token=SecretStr(token) if token else None))


def _values(series: list[dict[str, Any]]) -> list[Any]:
    """Every non-time cell of every row."""
    return [v for s in series for row in s.get("values", []) for v in row[1:]]


def shape_problems(query: PanelQuery, series: list[dict[str, Any]]) -> list[str]:
    """What is wrong with this result for this panel (empty list: it will draw)."""
    if not series:  # events (an annotation layer, a downtime log): none in the range draws
        # nothing, which is right (a demo machine may have had no stop or alarm yet); a
        # panel over measured data must draw
        return [] if query.lists_events else ["no series"]
    values = [v for v in _values(series) if v is not None]
    if not values:
        return ["only null values"]
    problems = []
    if any(s["columns"][0] != "time" for s in series):
        problems.append("first column is not time")
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if query.panel_type in NUMERIC_PANELS and not numeric and not query.grouped_fields:
        problems.append(f"non-numeric values in a {query.panel_type} panel")
    for name in (query.x_field, *query.grouped_fields):
        if name and not all(name in s.get("tags", {}) or name in s["columns"] for s in series):
            problems.append(f"field {name!r} is not a column of every row")
    return problems


def resolve_variables(
    client: InfluxQLClient,
    model: dict[str, Any],
    selection: dict[str, str | list[str]] | None = None,
) -> tuple[dict[str, Variable], list[Outcome]]:
    """Run the variable queries in order, each with the variables before it bound."""
    bound: dict[str, Variable] = {}
    outcomes = []
    for declared in variable_queries(model):
        text = interpolate(declared.query, bound)
        outcome = Outcome(f"{model['title']} / ${declared.name}", text)
        try:
            outcome.series = client.query(text)
        except DatabaseUnavailable as exc:
            outcome.problems.append(str(exc))
        options = sorted({row[1] for s in outcome.series for row in s.get("values", [])})
        if not options:
            outcome.problems.append("no values")
        bound[declared.name] = bind(declared, options, (selection or {}).get(declared.name, ALL))
        outcomes.append(outcome)
    return bound, outcomes


def verify_dashboard(
    client: InfluxQLClient,
    model: dict[str, Any],
    from_ms: int,
    to_ms: int,
    selection: dict[str, str | list[str]] | None = None,
) -> list[Outcome]:
    """Outcomes of every variable, panel and annotation query of one dashboard."""
    variables, outcomes = resolve_variables(client, model, selection)
    for query in panel_queries(model) + annotation_queries(model):
        text = expand(query.query, variables, from_ms, to_ms, interval_for(query, from_ms, to_ms))
        outcome = Outcome(query.label, text)
        try:
            outcome.series = client.query(text)
        except DatabaseUnavailable as exc:
            outcome.problems.append(str(exc))
        else:
            outcome.problems += shape_problems(query, outcome.series)
        outcomes.append(outcome)
    return outcomes
