"""Panel helpers: the few panel kinds the dashboards use, with our conventions (the one
InfluxDB datasource, machine-state colours, OEE thresholds) set once."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, bargauge, stat, statetimeline, table
from grafana_foundation_sdk.builders import timeseries as ts
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.models.common import BigValueColorMode, BigValueTextMode
from grafana_foundation_sdk.models.dashboard import (
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMapping,
    ValueMappingResult,
)

from shopfloor.dashboards.query import DATASOURCE, InfluxQLTarget
from shopfloor.shared.enums import MachineState

STATE_COLORS = {
    MachineState.RUNNING: "green",
    MachineState.IDLE: "yellow",
    MachineState.SETUP: "blue",
    MachineState.STOPPED: "red",
    MachineState.PLANNED_STOP: "purple",
    MachineState.OFFLINE: "gray",
}


def state_mappings() -> list[ValueMapping]:
    """Machine state (the `state` string field) -> colour, one entry per MachineState."""
    options = {
        str(state): ValueMappingResult(text=str(state), color=color, index=i)
        for i, (state, color) in enumerate(STATE_COLORS.items())
    }
    return [ValueMap(options=options)]


def online_mappings() -> list[ValueMapping]:
    """Agent `online` (bool) -> green "online" / red "offline"."""
    return [
        ValueMap(
            options={
                "true": ValueMappingResult(text="online", color="green", index=0),
                "false": ValueMappingResult(text="offline", color="red", index=1),
            }
        )
    ]


def ratio_thresholds() -> ThresholdsConfig:
    """OEE-style ratio colouring: red below 0.6, yellow below 0.85, green above."""
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps(
            [
                Threshold(value=None, color="red"),
                Threshold(value=0.6, color="yellow"),
                Threshold(value=0.85, color="green"),
            ]
        )
    )


def _last_value(fields: str = "") -> ReduceDataOptions:
    return ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields(fields)


def stat_panel(
    title: str, targets: list[InfluxQLTarget], w: int, h: int, unit: str = "", fields: str = ""
) -> stat.Panel:
    """One big value per series (last non-null), e.g. one tile per machine."""
    panel = (
        stat.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .span(w)
        .height(h)
        .reduce_options(_last_value(fields))
        .text_mode(BigValueTextMode.VALUE_AND_NAME)
        .color_mode(BigValueColorMode.BACKGROUND)
    )
    if unit:
        panel.unit(unit)
    for target in targets:
        panel.with_target(target)
    return panel


def bar_gauge_panel(
    title: str, targets: list[InfluxQLTarget], w: int, h: int, unit: str = ""
) -> bargauge.Panel:
    """One horizontal bar per numeric field and series (last non-null value)."""
    panel = (
        bargauge.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .span(w)
        .height(h)
        .reduce_options(_last_value())
    )
    if unit:
        panel.unit(unit)
    for target in targets:
        panel.with_target(target)
    return panel


def ratio_gauge(title: str, targets: list[InfluxQLTarget], w: int, h: int) -> bargauge.Panel:
    """Ratios in 0..1 (OEE, A, P, Q) as bars coloured by OEE thresholds."""
    return bar_gauge_panel(title, targets, w, h, "percentunit").min(0).max(1).thresholds(
        ratio_thresholds()
    )


def timeseries_panel(
    title: str, targets: list[InfluxQLTarget], w: int, h: int, unit: str = ""
) -> ts.Panel:
    panel = ts.Panel().title(title).datasource(DATASOURCE).span(w).height(h)
    if unit:
        panel.unit(unit)
    for target in targets:
        panel.with_target(target)
    return panel


def state_timeline_panel(title: str, target: InfluxQLTarget, w: int, h: int) -> statetimeline.Panel:
    """Machine states over time, coloured by STATE_COLORS."""
    return (
        statetimeline.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .span(w)
        .height(h)
        .mappings(state_mappings())
        .with_target(target)
    )


def table_panel(title: str, targets: list[InfluxQLTarget], w: int, h: int) -> table.Panel:
    panel = table.Panel().title(title).datasource(DATASOURCE).span(w).height(h)
    for target in targets:
        panel.with_target(target)
    return panel


def bar_chart_panel(
    title: str, target: InfluxQLTarget, w: int, h: int, x_field: str, unit: str = ""
) -> barchart.Panel:
    """Categories along x (a tag column of a table query), e.g. a downtime Pareto."""
    panel = (
        barchart.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .span(w)
        .height(h)
        .x_field(x_field)
        .with_target(target)
    )
    if unit:
        panel.unit(unit)
    return panel
