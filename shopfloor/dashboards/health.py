"""Dashboard 5, system health: ingest rate, end-to-end lag, lost samples, dead letters
(measurement collector_stats, written by the collector; docs/influxdb-schema.md)."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from shopfloor.dashboards.common import new_dashboard
from shopfloor.dashboards.panels import timeseries_panel
from shopfloor.dashboards.query import InfluxQL
from shopfloor.dashboards.variables import group_by, series_name, where
from shopfloor.shared import schema

UID = "shopfloor-system-health"


def ingest_rate() -> InfluxQL:
    """Telemetry samples stored per second, per line (counted from telemetry itself)."""
    return InfluxQL(
        f'SELECT count("{schema.SEQ_FIELD}") * 1000 / $__interval_ms AS "samples_per_s" '
        f'FROM "{schema.TELEMETRY}" '
        f"{where(schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)} "
        f"{group_by(schema.TAG_SITE, schema.TAG_LINE, time=True)} fill(0)"
    ).alias(series_name(schema.TAG_SITE, schema.TAG_LINE))


def dashboard() -> Dashboard:
    return (
        new_dashboard(
            UID, "System health",
            "The monitoring system itself: samples stored per second, end-to-end lag, "
            "samples lost between edge and database, dead letters.",
            time_from="now-6h",
        )
        .with_row(Row("Ingest"))
        .with_panel(timeseries_panel("Samples stored per second", [ingest_rate()], w=24, h=8,
                                     unit="none"))
    )
