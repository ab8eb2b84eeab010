"""Template variables shared by every dashboard: site, line, machine, each a
`SHOW TAG VALUES` query that narrows by the variables before it, and the WHERE clause
fragments that filter a panel's query by them."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import QueryVariable
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import (
    VariableModel,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from shopfloor.dashboards.query import DATASOURCE
from shopfloor.shared import schema

TAG_VARIABLES = (schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)
"""Variable names equal the tag keys they filter."""

VARIABLE_SOURCE = schema.TELEMETRY
"""Every machine that reports shows up in telemetry, so its tags list them all."""


def tag_filter(*tags: str) -> str:
    """`"site" =~ /^$site$/ AND ...` for the given tags (Grafana fills in the regex)."""
    return " AND ".join(f'"{tag}" =~ /^${tag}$/' for tag in tags)


def where(*tags: str, time: bool = True) -> str:
    """A WHERE clause filtering by the variables named in `tags`, and by the dashboard's
    time range unless `time` is False."""
    parts = [tag_filter(*tags)] if tags else []
    if time:
        parts.append("$timeFilter")
    return "WHERE " + " AND ".join(parts)


def group_by(*tags: str, time: bool = False) -> str:
    """`GROUP BY [time($__interval), ]"site", ...` (one series per tag combination)."""
    parts = (["time($__interval)"] if time else []) + [f'"{tag}"' for tag in tags]
    return "GROUP BY " + ", ".join(parts)


def series_name(*tags: str) -> str:
    """Grafana alias naming a series by its tags, e.g. `$tag_site/$tag_machine`."""
    return "/".join(f"$tag_{tag}" for tag in tags)


def tag_values_query(tag: str) -> str:
    """SHOW TAG VALUES for `tag`, narrowed by the variables listed before it."""
    before = TAG_VARIABLES[: TAG_VARIABLES.index(tag)]
    query = f'SHOW TAG VALUES FROM "{VARIABLE_SOURCE}" WITH KEY = "{tag}"'
    if before:
        query += " WHERE " + tag_filter(*before)
    return query


def tag_variable(tag: str, multi: bool = True) -> QueryVariable:
    """A variable listing the values of `tag`; multi-value with "All" unless `multi` is
    False (then exactly one value, e.g. the machine of the machine-detail dashboard)."""
    variable = (
        QueryVariable(tag)
        .label(tag.capitalize())
        .datasource(DATASOURCE)
        .query(tag_values_query(tag))
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    if multi:
        variable.current(VariableOption(selected=True, text=["All"], value=["$__all"]))
    return variable


def standard_variables(single_machine: bool = False) -> list[Builder[VariableModel]]:
    """site, line, machine — all multi-value with "All", or (for one machine's
    dashboard) each exactly one value, so that a machine id is never ambiguous."""
    return [tag_variable(tag, multi=not single_machine) for tag in TAG_VARIABLES]
