"""Dashboard 5, system health, from what InfluxDB holds: samples stored per second,
samples missing from the stored sequence numbers (lost between edge and database), the
collector's end-to-end lag, dead letters and its own lost / late counts (its
`collector_stats` points), edge agents
online over time, each edge agent's outbox depth (from the status it repeats every
status period), time of each machine's latest stored sample."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from shopfloor.dashboards.common import new_dashboard
from shopfloor.dashboards.panels import (
    bar_gauge_panel,
    online_mappings,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
)
from shopfloor.dashboards.query import InfluxQLTarget
from shopfloor.dashboards.variables import group_by, series_name, where
from shopfloor.shared import schema

UID = "shopfloor-system-health"
ALL_TAGS = (schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)
SEQ = schema.SEQ_FIELD
STATS_TAGS = (schema.TAG_SITE, schema.TAG_COLLECTOR)
STATS_SERIES = series_name(*STATS_TAGS)


def ingest_rate() -> InfluxQLTarget:
    """Telemetry samples stored per second, per line (counted from telemetry itself)."""
    return InfluxQLTarget(
        f'SELECT count("{SEQ}") * 1000 / $__interval_ms AS "samples_per_s" '
        f'FROM "{schema.TELEMETRY}" {where(*ALL_TAGS)} '
        f"{group_by(*ALL_TAGS[:2], time=True)} fill(0)"
    ).alias(series_name(*ALL_TAGS[:2]))


def missing_samples() -> InfluxQLTarget:
    """Per machine over the time range: sequence numbers spanned (last - first + 1)
    minus samples stored. `seq` grows by one per sample and survives restarts, so every
    missing number between the range's first and last stored sample is a sample lost
    between edge and database. first/last read one block each; `spread()` (max - min)
    scans every value and cost 8x more (benchmarks/dashboards.py)."""
    return InfluxQLTarget(
        f'SELECT last("{SEQ}") - first("{SEQ}") + 1 - count("{SEQ}") AS "lost" '
        f'FROM "{schema.TELEMETRY}" {where(*ALL_TAGS)} {group_by(*ALL_TAGS)}'
    ).alias(series_name(*ALL_TAGS))


def end_to_end_lag() -> InfluxQLTarget:
    """Per collector: write time - sample ts, s. Each point holds one stats period's
    percentiles, which cannot be merged exactly: an interval shows the mean of its p50s
    and the worst of its p99s."""
    return InfluxQLTarget(
        f'SELECT mean("lag_p50_s") AS "p50", max("lag_p99_s") AS "p99" '
        f'FROM "{schema.COLLECTOR_STATS}" {where(schema.TAG_SITE)} '
        f"{group_by(*STATS_TAGS, time=True)}"
    ).alias(f"{STATS_SERIES} $col")


def lost_and_late() -> InfluxQLTarget:
    """Per collector, its own loss accounting (cumulative since it started): `lost` is net
    of the samples that came after their gap's grace period (those count as `late`), and a
    new stream (a new edge epoch, a seq jump beyond 10,000,000) is never a loss — where the
    stored-sequence panel cannot tell a new stream from a gap."""
    return InfluxQLTarget(
        f'SELECT last("lost") AS "lost", last("late") AS "late" '
        f'FROM "{schema.COLLECTOR_STATS}" {where(schema.TAG_SITE)} '
        f"{group_by(*STATS_TAGS, time=True)}"
    ).alias(f"{STATS_SERIES} $col")


def dead_letters() -> InfluxQLTarget:
    """Messages dead-lettered per minute, per collector, from the cumulative counter
    (non_negative_difference skips the drop to 0 when a collector restarts)."""
    return InfluxQLTarget(
        f'SELECT non_negative_difference(last("dead_letters")) * 60000 / $__interval_ms '
        f'AS "per_min" FROM "{schema.COLLECTOR_STATS}" {where(schema.TAG_SITE)} '
        f"{group_by(*STATS_TAGS, time=True)}"
    ).alias(STATS_SERIES)


def agents_timeline() -> InfluxQLTarget:
    return InfluxQLTarget(
        f'SELECT "online" FROM "{schema.AGENT_STATUS}" {where(schema.TAG_SITE)} '
        f"{group_by(schema.TAG_SITE, schema.TAG_AGENT)}"
    ).alias(series_name(schema.TAG_SITE, schema.TAG_AGENT))


def edge_queue_depth() -> InfluxQLTarget:
    """Samples waiting in each edge agent's outbox (not yet acknowledged by the broker),
    from the `queue_depth` of the status the agent repeats while connected: a backlog
    after an outage shows as it drains."""
    return InfluxQLTarget(
        f'SELECT max("queue_depth") AS "queue_depth" FROM "{schema.AGENT_STATUS}" '
        f"{where(schema.TAG_SITE)} {group_by(schema.TAG_SITE, schema.TAG_AGENT, time=True)}"
    ).alias(series_name(schema.TAG_SITE, schema.TAG_AGENT))


def latest_samples() -> InfluxQLTarget:
    return InfluxQLTarget(
        f'SELECT last("{SEQ}") AS "last_seq" FROM "{schema.TELEMETRY}" '
        f"{where(*ALL_TAGS, time=False)} {group_by(*ALL_TAGS)}"
    ).table()


def dashboard() -> Dashboard:
    agents = state_timeline_panel("Edge agents online", agents_timeline(), w=12, h=8)
    agents.mappings(online_mappings())
    return (
        new_dashboard(
            UID, "System health",
            "The monitoring system itself: samples stored per second, samples lost "
            "between edge and database, the collector's end-to-end lag and dead letters, "
            "edge agents online and their queue depth, latest sample per machine.",
            time_from="now-6h", refresh="1m",
        )
        .with_row(Row("Ingest"))
        .with_panel(timeseries_panel("Samples stored per second", [ingest_rate()], w=12, h=8,
                                     unit="none"))
        .with_panel(bar_gauge_panel("Lost samples in the time range (sequence gaps)",
                                    [missing_samples()], w=12, h=8, unit="none"))
        .with_row(Row("Collector"))
        .with_panel(timeseries_panel("End-to-end lag", [end_to_end_lag()], w=12, h=8,
                                     unit="s"))
        .with_panel(timeseries_panel("Dead letters", [dead_letters()], w=12, h=8,
                                     unit="none"))
        .with_panel(timeseries_panel("Samples lost and late (collector count)",
                                     [lost_and_late()], w=24, h=8, unit="none"))
        .with_row(Row("Edge"))
        .with_panel(agents)
        .with_panel(timeseries_panel("Edge queue depth", [edge_queue_depth()], w=12, h=8,
                                     unit="none"))
        .with_panel(table_panel("Latest stored sample per machine", [latest_samples()],
                                w=24, h=8))
    )
