"""Dashboard 2, machine detail (one machine): state timeline, A/P/Q/OEE trend, produced
and scrap counts, the six big losses, downtime reasons, MTBF/MTTR."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig

from shopfloor.dashboards import formulas as f
from shopfloor.dashboards.common import new_dashboard
from shopfloor.dashboards.panels import (
    bar_chart_panel,
    bar_gauge_panel,
    ratio_gauge,
    ratio_thresholds,
    stat_panel,
    state_timeline_panel,
    timeseries_panel,
)
from shopfloor.dashboards.query import InfluxQL
from shopfloor.dashboards.variables import group_by, series_name, where
from shopfloor.shared import schema
from shopfloor.shared.enums import MachineState

UID = "shopfloor-machine-detail"
ALL_TAGS = (schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)
RATIOS = ("availability", "performance", "quality", "oee")
ROLLUP_INTERVAL = "1m"
"""oee_rollup holds one point per machine and minute: no finer interval makes sense."""


def state_timeline() -> InfluxQL:
    return InfluxQL(
        f'SELECT "state" FROM "{schema.MACHINE_STATE}" {where(*ALL_TAGS)} '
        f"{group_by(*ALL_TAGS)}"
    ).alias(series_name(schema.TAG_MACHINE))


def ratio_trend() -> InfluxQL:
    columns = tuple(zip(RATIOS, (f.AVAILABILITY, f.PERFORMANCE, f.QUALITY, f.OEE),
                        strict=True))
    return InfluxQL(
        f'{f.select(*columns)} FROM "{f.ROLLUP}" {where(*ALL_TAGS)} '
        "GROUP BY time($__interval) fill(none)"
    )


def counts() -> InfluxQL:
    return InfluxQL(
        f'{f.select(("produced", f.PRODUCED), ("scrap", f.SCRAP))} FROM "{f.ROLLUP}" '
        f"{where(*ALL_TAGS)} GROUP BY time($__interval) fill(0)"
    )


def six_losses() -> InfluxQL:
    return InfluxQL(
        f"{f.select(*f.SIX_LOSSES_S.items())} FROM \"{f.ROLLUP}\" {where(*ALL_TAGS)}"
    )


def reliability() -> InfluxQL:
    return InfluxQL(
        f'{f.select(("MTBF", f.MTBF_S), ("MTTR", f.MTTR_S))} FROM "{f.ROLLUP}" '
        f"{where(*ALL_TAGS)}"
    )


def stops() -> InfluxQL:
    """Every change into a non-running state, with its reason (a table of events)."""
    return InfluxQL(
        f'SELECT "state", "reason" FROM "{schema.MACHINE_STATE}" {where(*ALL_TAGS)} '
        f"AND \"state\" != '{MachineState.RUNNING}'"
    ).table()


def pareto() -> list[DataTransformerConfig]:
    """Group the stop events by reason, count them, most frequent first (Grafana's
    groupBy and sortBy transformations: InfluxQL cannot group by a field)."""
    return [
        DataTransformerConfig(id_val="groupBy", options={"fields": {
            "reason": {"aggregations": [], "operation": "groupby"},
            "state": {"aggregations": ["count"], "operation": "aggregate"},
        }}),
        DataTransformerConfig(id_val="sortBy", options={
            "sort": [{"field": "state (count)", "desc": True}]}),
    ]


def this_shift() -> InfluxQL:
    columns = ", ".join(f'last("{k}") AS "{k}"' for k in RATIOS)
    return InfluxQL(
        f'SELECT {columns} FROM "{schema.OEE}" {where(*ALL_TAGS, time=False)} '
        f"AND {f.window_is(f.CURRENT_WINDOW)} AND {f.FRESH}"
    )


def dashboard() -> Dashboard:
    trend = timeseries_panel("Availability, performance, quality, OEE", [ratio_trend()],
                             w=16, h=8, unit="percentunit")
    trend.interval(ROLLUP_INTERVAL).thresholds(ratio_thresholds())
    produced = timeseries_panel("Produced and scrap", [counts()], w=8, h=8, unit="none")
    produced.interval(ROLLUP_INTERVAL)
    reasons = bar_chart_panel("Stops by reason (count, Pareto)", stops(), w=12, h=8,
                              x_field="reason")
    reasons.transformations(pareto())
    return (
        new_dashboard(
            UID, "Machine detail",
            "One machine: states, OEE and its components, counts, the six big losses "
            "(ISO 22400 / docs/oee.md), downtime reasons, MTBF and MTTR.",
            single_machine=True,
        )
        .with_row(Row("State"))
        .with_panel(state_timeline_panel("State timeline", state_timeline(), w=24, h=5))
        .with_row(Row("OEE"))
        .with_panel(ratio_gauge("This shift", [this_shift()], w=24, h=5))
        .with_panel(trend)
        .with_panel(produced)
        .with_row(Row("Losses"))
        .with_panel(bar_gauge_panel("Six big losses", [six_losses()], w=12, h=8, unit="s"))
        .with_panel(stat_panel("MTBF / MTTR", [reliability()], w=12, h=8, unit="s"))
        .with_row(Row("Downtime"))
        .with_panel(reasons)
    )
