"""Dashboard 3, line flow: WIP per buffer over time, throughput per station, lead time."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from shopfloor.dashboards import formulas as f
from shopfloor.dashboards.alarms import annotation as alarm_annotation
from shopfloor.dashboards.common import new_dashboard
from shopfloor.dashboards.panels import bar_chart_panel, timeseries_panel
from shopfloor.dashboards.query import InfluxQLTarget
from shopfloor.dashboards.variables import group_by, series_name, where
from shopfloor.shared import schema
from shopfloor.shared.reasons import UNCLASSIFIED

UID = "shopfloor-line-flow"
LINE_TAGS = (schema.TAG_SITE, schema.TAG_LINE)
MACHINE_TAGS = (schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)
BUFFER = schema.TAG_BUFFER


def wip_per_buffer() -> InfluxQLTarget:
    return InfluxQLTarget(
        f'SELECT last("wip") AS "wip" FROM "{schema.WIP}" {where(*LINE_TAGS)} '
        f"AND \"{BUFFER}\" != '' "
        f"{group_by(*LINE_TAGS, BUFFER, time=True)} fill(previous)"
    ).alias(series_name(*LINE_TAGS, BUFFER))


def throughput() -> InfluxQLTarget:
    """Good parts per hour and station: (produced - scrap) per interval, scaled to 1 h."""
    return InfluxQLTarget(
        f'SELECT ({f.PRODUCED} - ({f.SCRAP})) * 3600000 / $__interval_ms AS "good_per_h" '
        f'FROM "{f.ROLLUP}" {where(*MACHINE_TAGS)} '
        f"{group_by(*MACHINE_TAGS, time=True)} fill(0)"
    ).alias(series_name(*MACHINE_TAGS))


def line_figure(field: str) -> InfluxQLTarget:
    """A line-level Little's-law figure of the rolling window (collector snapshots)."""
    return InfluxQLTarget(
        f'SELECT last("{field}") AS "{field}" FROM "{schema.WIP}" {where(*LINE_TAGS)} '
        f"AND \"{BUFFER}\" = '' AND {f.window_is(f.ROLLING_WINDOW)} "
        f"{group_by(*LINE_TAGS, time=True)} fill(none)"
    ).alias(series_name(*LINE_TAGS))


UNCLASSIFIED_COLUMN = "unclassified_min"


def unclassified_per_shift() -> InfluxQLTarget:
    """Minutes of downtime nobody classified yet, per shift (the shift a part starts in;
    summed over the time range): where the downtime Pareto is still blind."""
    return InfluxQLTarget(
        f'SELECT sum("{schema.DURATION_FIELD}") / 60 AS "{UNCLASSIFIED_COLUMN}" '
        f'FROM "{schema.DOWNTIME}" {where(*LINE_TAGS)} '
        f"AND \"{schema.TAG_REASON}\" = '{UNCLASSIFIED}' GROUP BY \"{schema.TAG_SHIFT}\""
    ).table()


def dashboard() -> Dashboard:
    flow = timeseries_panel("Station throughput (good parts per hour)", [throughput()], w=24, h=8,
                            unit="none")
    flow.interval("1m")
    return (
        new_dashboard(
            UID, "Line flow",
            "Work in progress between stations, throughput of each station, lead time "
            "(Little's law: mean WIP / throughput; docs/oee.md, WIP).",
        )
        .annotation(alarm_annotation(*LINE_TAGS))
        .with_row(Row("WIP"))
        .with_panel(timeseries_panel("WIP per buffer", [wip_per_buffer()], w=24, h=8,
                                     unit="none"))
        .with_row(Row("Throughput and lead time (rolling window)"))
        .with_panel(timeseries_panel("Line throughput (good parts per hour)",
                                     [line_figure("throughput_per_h")], w=12, h=8, unit="none"))
        .with_panel(timeseries_panel("Lead time", [line_figure("lead_time_s")], w=12, h=8,
                                     unit="s"))
        .with_row(Row("Stations"))
        .with_panel(flow)
        .with_row(Row("Downtime"))
        .with_panel(bar_chart_panel("Unclassified downtime per shift (min)",
                                    unclassified_per_shift(), w=24, h=8,
                                    x_field=schema.TAG_SHIFT, unit="m"))
    )
