"""Plugs the live KPI engine (`shopfloor.kpi`) into a collector: the engine gets every
durably written batch as a sink (`WrittenBatch` is a `shopfloor.kpi.feed.StoredBatch`)
and publishes its retained KPI topics through the collector's own publish path. The
dependency goes one way: the collector knows the KPI engine, never the reverse."""

from __future__ import annotations

from shopfloor.collector.service import Collector
from shopfloor.kpi.live import LiveKpi
from shopfloor.kpi.sink import LiveKpiWorker


def attach_live_kpi(collector: Collector) -> LiveKpiWorker:
    """Register the live KPI sink on a Collector (before `start`)."""
    worker = LiveKpiWorker(LiveKpi(collector.plant, publish=collector.publish_retained))
    collector.add_sink(worker)
    return worker
