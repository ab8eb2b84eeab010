"""Dashboard 2, machine detail (one machine): state timeline, A/P/Q/OEE trend, produced
and scrap counts, the six big losses, downtime reasons, MTBF/MTTR."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig

from shopfloor.dashboards import formulas as f
from shopfloor.dashboards.alarms import annotation as alarm_annotation
from shopfloor.dashboards.common import new_dashboard
from shopfloor.dashboards.panels import (
    bar_chart_panel,
    bar_gauge_panel,
    ratio_gauge,
    ratio_thresholds,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
)
from shopfloor.dashboards.query import InfluxQLTarget
from shopfloor.dashboards.variables import group_by, series_name, where
from shopfloor.shared import schema
from shopfloor.shared.enums import MachineState

UID = "shopfloor-machine-detail"
ALL_TAGS = (schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)
RATIOS = ("availability", "performance", "quality", "oee")
DOWNTIME_COLUMN = "downtime_s"
STOPS_COLUMN = "stops"
ROLLUP_INTERVAL = "1m"
"""oee_rollup holds one point per machine and minute: no finer interval makes sense."""


def state_timeline() -> InfluxQLTarget:
    return InfluxQLTarget(
        f'SELECT "state" FROM "{schema.MACHINE_STATE}" {where(*ALL_TAGS)} '
        f"{group_by(*ALL_TAGS)}"
    ).alias(series_name(schema.TAG_MACHINE))


def ratio_trend() -> InfluxQLTarget:
    columns = tuple(zip(RATIOS, (f.AVAILABILITY, f.PERFORMANCE, f.QUALITY, f.OEE),
                        strict=True))
    return InfluxQLTarget(
        f'{f.select(*columns)} FROM "{f.ROLLUP}" {where(*ALL_TAGS)} '
        "GROUP BY time($__interval) fill(none)"
    )


def counts() -> InfluxQLTarget:
    return InfluxQLTarget(
        f'{f.select(("produced", f.whole_parts(f.PRODUCED)), ("scrap", f.whole_parts(f.SCRAP)))}'
        f' FROM "{f.ROLLUP}" {where(*ALL_TAGS)} GROUP BY time($__interval) fill(0)'
    )


def six_losses() -> InfluxQLTarget:
    return InfluxQLTarget(
        f"{f.select(*f.SIX_LOSSES_S.items())} FROM \"{f.ROLLUP}\" {where(*ALL_TAGS)}"
    )


def reliability() -> InfluxQLTarget:
    return InfluxQLTarget(
        f'{f.select(("MTBF", f.MTBF_S), ("MTTR", f.MTTR_S))} FROM "{f.ROLLUP}" '
        f"{where(*ALL_TAGS)}"
    )


def by_reason(function: str, column: str) -> InfluxQLTarget:
    """`function` of the finished non-running states per reason, from `state_duration`
    (the collector writes a state's duration when it ends: docs/influxdb-schema.md). A
    table of one row per reason; a state counts in the range its start falls in."""
    return InfluxQLTarget(
        f'SELECT {function}("{schema.DURATION_FIELD}") AS "{column}" '
        f'FROM "{schema.STATE_DURATION}" {where(*ALL_TAGS)} '
        f"AND \"{schema.TAG_STATE}\" != '{MachineState.RUNNING}' "
        f'GROUP BY "{schema.TAG_REASON}"'
    ).table()


def downtime() -> InfluxQLTarget:
    """Seconds of downtime per classified reason (`unclassified` too): the Pareto people
    act on. Summed from the API's `downtime` points, one per event part with its
    duration; a reclassified part's old point holds 0 s (docs/influxdb-schema.md)."""
    return InfluxQLTarget(
        f'SELECT sum("{schema.DURATION_FIELD}") AS "{DOWNTIME_COLUMN}" '
        f'FROM "{schema.DOWNTIME}" {where(*ALL_TAGS)} GROUP BY "{schema.TAG_REASON}"'
    ).table()


LOG_COLUMNS = ("event", schema.TAG_STATE, "plc_reason", schema.TAG_REASON,
               schema.TAG_CATEGORY, schema.TAG_LOSS, schema.DURATION_FIELD, "by", "comment")


def downtime_log() -> InfluxQLTarget:
    """Every downtime event part of the machine with its classification (the current
    one: tombstones of earlier reasons are left out)."""
    columns = ", ".join(f'"{c}"' for c in LOG_COLUMNS)
    return InfluxQLTarget(
        f'SELECT {columns} FROM "{schema.DOWNTIME}" {where(*ALL_TAGS)} AND "active" = true'
    ).table()


def stop_counts() -> InfluxQLTarget:
    """Number of stops per PLC reason (frequent short stops vs rare long ones)."""
    return by_reason("count", STOPS_COLUMN)


def pareto(column: str) -> list[DataTransformerConfig]:
    """Largest first (Grafana's sortBy: InfluxQL cannot order rows by a value)."""
    return [
        DataTransformerConfig(id_val="sortBy", options={
            "sort": [{"field": column, "desc": True}]}),
    ]


def this_shift() -> InfluxQLTarget:
    columns = ", ".join(f'last("{k}") AS "{k}"' for k in RATIOS)
    return InfluxQLTarget(
        f'SELECT {columns} FROM "{schema.OEE}" {where(*ALL_TAGS, time=False)} '
        f"AND {f.window_is(f.CURRENT_WINDOW)} AND {f.FRESH}"
    )


def dashboard() -> Dashboard:
    trend = timeseries_panel("Availability, performance, quality, OEE", [ratio_trend()],
                             w=16, h=8, unit="percentunit")
    trend.interval(ROLLUP_INTERVAL).thresholds(ratio_thresholds())
    produced = timeseries_panel("Produced and scrap", [counts()], w=8, h=8, unit="none")
    produced.interval(ROLLUP_INTERVAL)
    reasons = bar_chart_panel("Downtime by classified reason (Pareto, s)", downtime(), w=12,
                              h=8, x_field=schema.TAG_REASON, unit="s")
    reasons.transformations(pareto(DOWNTIME_COLUMN))
    counted = bar_chart_panel("Stops by PLC reason (count)", stop_counts(), w=12, h=8,
                              x_field=schema.TAG_REASON, unit="none")
    counted.transformations(pareto(STOPS_COLUMN))
    return (
        new_dashboard(
            UID, "Machine detail",
            "One machine: states, OEE and its components, counts, the six big losses "
            "(ISO 22400 / docs/oee.md), downtime reasons, MTBF and MTTR.",
            single_machine=True,
        )
        .annotation(alarm_annotation(*ALL_TAGS))
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
        .with_panel(counted)
        .with_panel(table_panel("Downtime log", [downtime_log()], w=24, h=8))
    )
