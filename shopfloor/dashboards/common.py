"""What every shopfloor dashboard shares: tags, time range, refresh, the site/line/machine
variables, and links to the other shopfloor dashboards (keeping variables and time)."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, DashboardLink
from grafana_foundation_sdk.models.dashboard import DashboardLinkType

from shopfloor.dashboards.variables import standard_variables

TAG = "shopfloor"


def new_dashboard(
    uid: str, title: str, description: str, single_machine: bool = False,
    time_from: str = "now-8h", refresh: str = "10s",
) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .time(time_from, "now")
        .timezone("browser")
        .refresh(refresh)
        .editable()
        .variables(standard_variables(single_machine))
        .link(
            DashboardLink("shopfloor")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
