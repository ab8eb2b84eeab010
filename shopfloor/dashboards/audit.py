"""Dashboard 4, control audit: every command and refused action, by who, what and with
what outcome (measurement control_audit, written by the API; docs/api.md)."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from shopfloor.dashboards.common import new_dashboard
from shopfloor.dashboards.panels import bar_chart_panel, table_panel
from shopfloor.dashboards.query import InfluxQLTarget
from shopfloor.dashboards.variables import where
from shopfloor.shared import schema

UID = "shopfloor-control-audit"
AUDIT = schema.CONTROL_AUDIT
ALL_TAGS = (schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)
SENT = "sent"
"""Outcome of the entry written when a command goes out (the result comes later)."""

COLUMNS = ("machine", "requested_by", "action", "point", "value", "outcome", "readback",
           "detail", "command_id", "late")


def entries() -> InfluxQLTarget:
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    return InfluxQLTarget(
        f'SELECT {columns} FROM "{AUDIT}" {where(*ALL_TAGS)} ORDER BY time DESC LIMIT 1000'
    ).table()


def count_by(tag: str, results_only: bool) -> InfluxQLTarget:
    """Entries per value of `tag`: requests (sent + refused) or final outcomes only."""
    outcome = f"\"outcome\" {'!=' if results_only else '='} '{SENT}'"
    if not results_only:
        outcome = f"({outcome} OR \"outcome\" = 'refused')"
    return InfluxQLTarget(
        f'SELECT count("command_id") AS "commands" FROM "{AUDIT}" {where(*ALL_TAGS)} '
        f'AND {outcome} GROUP BY "{tag}"'
    ).table()


def dashboard() -> Dashboard:
    return (
        new_dashboard(
            UID, "Control audit",
            "Commands sent to machines and actions refused by the API: who, what, outcome.",
            time_from="now-7d", refresh="30s",
        )
        .with_row(Row("Summary"))
        .with_panel(bar_chart_panel("Requests by who", count_by("requested_by", False),
                                    w=8, h=8, x_field="requested_by"))
        .with_panel(bar_chart_panel("Requests by action", count_by("action", False),
                                    w=8, h=8, x_field="action"))
        .with_panel(bar_chart_panel("Results by outcome", count_by("outcome", True),
                                    w=8, h=8, x_field="outcome"))
        .with_row(Row("Log"))
        .with_panel(table_panel("Audit log", [entries()], w=24, h=14))
    )
