"""Dashboard 1, plant overview: every machine's current state, OEE per line and per
machine for the current shift, WIP per line, edge agents online."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from shopfloor.dashboards import formulas as f
from shopfloor.dashboards.common import new_dashboard
from shopfloor.dashboards.panels import (
    online_mappings,
    ratio_gauge,
    stat_panel,
    state_mappings,
    table_panel,
    timeseries_panel,
)
from shopfloor.dashboards.query import InfluxQLTarget
from shopfloor.dashboards.variables import group_by, series_name, where
from shopfloor.shared import schema

UID = "shopfloor-plant-overview"
ALL_TAGS = (schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)
LINE_TAGS = ALL_TAGS[:2]


def machine_states() -> InfluxQLTarget:
    """Last state change of each machine, whenever it was (no time filter)."""
    return InfluxQLTarget(
        f'SELECT last("state") AS "state" FROM "{schema.MACHINE_STATE}" '
        f"{where(*ALL_TAGS, time=False)} {group_by(*ALL_TAGS)}"
    ).alias(series_name(*ALL_TAGS))


def state_details() -> InfluxQLTarget:
    """The latest state change of each machine as one row: since (time), state, reason,
    product, work order. A raw row, not last() per field: last("reason") would show an
    older change's reason while the machine runs (running carries none)."""
    return InfluxQLTarget(
        f'SELECT "state", "reason", "product", "work_order" FROM "{schema.MACHINE_STATE}" '
        f"{where(*ALL_TAGS, time=False)} {group_by(*ALL_TAGS)} ORDER BY time DESC LIMIT 1"
    ).table()


def _current_shift() -> str:
    return f"{where(*ALL_TAGS, time=False)} AND {f.window_is(f.CURRENT_WINDOW)} AND {f.FRESH}"


def oee_per_machine() -> InfluxQLTarget:
    """The collector's latest snapshot of each machine's current shift."""
    return InfluxQLTarget(
        f'SELECT last("oee") AS "oee" FROM "{schema.OEE}" {_current_shift()} '
        f"{group_by(*ALL_TAGS)}"
    ).alias(series_name(*ALL_TAGS))


def oee_per_line() -> InfluxQLTarget:
    """FPT / PBT_obs summed over the line's machines (never an average of ratios)."""
    inner = (
        f'SELECT last("fpt_s") AS "fpt_s", last("pbt_obs_s") AS "pbt_obs_s" '
        f'FROM "{schema.OEE}" {_current_shift()} {group_by(*ALL_TAGS)}'
    )
    return InfluxQLTarget(
        f'SELECT sum("fpt_s") / sum("pbt_obs_s") AS "oee" FROM ({inner}) {group_by(*LINE_TAGS)}'
    ).alias(series_name(*LINE_TAGS))


def wip_per_line() -> InfluxQLTarget:
    return InfluxQLTarget(
        f'SELECT last("wip") AS "wip" FROM "{schema.WIP}" {where(*LINE_TAGS)} '
        f"AND \"{schema.TAG_BUFFER}\" = '' {group_by(*LINE_TAGS, time=True)} fill(previous)"
    ).alias(series_name(*LINE_TAGS))


def agents_online() -> InfluxQLTarget:
    return InfluxQLTarget(
        f'SELECT last("online") AS "online" FROM "{schema.AGENT_STATUS}" '
        f"{where(schema.TAG_SITE, time=False)} {group_by(schema.TAG_SITE, schema.TAG_AGENT)}"
    ).alias(series_name(schema.TAG_SITE, schema.TAG_AGENT))


def dashboard() -> Dashboard:
    states = stat_panel("Machine state", [machine_states()], w=24, h=5, fields="/^state$/")
    states.mappings(state_mappings())
    details = table_panel("Since when, and why", [state_details()], w=24, h=7)
    agents = stat_panel("Edge agents", [agents_online()], w=24, h=4, fields="/^online$/")
    agents.mappings(online_mappings())
    return (
        new_dashboard(
            UID, "Plant overview",
            "Current state of every machine, OEE of the current shift per line and "
            "machine, WIP per line, edge agents online.",
        )
        .with_row(Row("Now"))
        .with_panel(states)
        .with_panel(details)
        .with_panel(agents)
        .with_row(Row("OEE, current shift"))
        .with_panel(ratio_gauge("OEE per line", [oee_per_line()], w=8, h=8))
        .with_panel(ratio_gauge("OEE per machine", [oee_per_machine()], w=16, h=8))
        .with_row(Row("Work in progress"))
        .with_panel(timeseries_panel("WIP per line", [wip_per_line()], w=24, h=8, unit="none"))
    )
