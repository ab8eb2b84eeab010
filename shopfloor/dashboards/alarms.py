"""Dashboard 6, alarms (measurement `alarm`, written by `shopfloor alarms`; docs/alarms.md):
the alarms not in normal, the raises per shift, the ISA-18.2 flood indicator and the
log of transitions; and the alarm annotations the machine-detail and line-flow
dashboards overlay on their time series."""

from __future__ import annotations

from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row, ThresholdsConfig
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    AnnotationQuery,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
)

from shopfloor.dashboards.common import new_dashboard
from shopfloor.dashboards.panels import bar_chart_panel, table_panel, timeseries_panel
from shopfloor.dashboards.query import DATASOURCE, InfluxQLTarget
from shopfloor.dashboards.variables import series_name, where
from shopfloor.shared import schema
from shopfloor.shared.enums import AlarmState, EventKind

UID = "shopfloor-alarms"
ALL_TAGS = (schema.TAG_SITE, schema.TAG_LINE, schema.TAG_MACHINE)
LINE_TAGS = (schema.TAG_SITE, schema.TAG_LINE)
STATE_COLUMN = "state"
COUNT_COLUMN = "alarms"
FLOOD_WINDOW = "10m"
OPERATORS_PER_LINE = 1
"""The flood indicator counts alarms per line: one operator per line (the dashboards
are the same JSON for every plant; docs/dashboards.md says how to read it otherwise)."""
ACCEPTABLE_PER_10_MIN = 2  # ISA-18.2: about 1 is very likely acceptable, 2 manageable
FLOOD_PER_10_MIN = 10  # ISA-18.2: more than 10 per operator in 10 minutes is a flood
ANNUNCIATED = (f"\"kind\" = '{EventKind.RAISE}' "
               f"AND \"to_state\" = '{AlarmState.ACTIVE_UNACK}'")
"""Raises an operator saw: not those of a shelved or out-of-service alarm."""


def active() -> InfluxQLTarget:
    """The latest transition of every alarm instance, however old (the panel drops the
    ones back in normal: InfluxQL cannot filter after LIMIT)."""
    instance = ", ".join(f'"{tag}"' for tag in schema.ALARM_INSTANCE_TAGS)
    return InfluxQLTarget(
        f'SELECT "to_state" AS "{STATE_COLUMN}", "severity", "kind", "by", "comment" '
        f'FROM "{schema.ALARM}" {where(*ALL_TAGS, time=False)} '
        f"GROUP BY {instance} ORDER BY time DESC LIMIT 1"
    ).table()


def not_normal() -> list[DataTransformerConfig]:
    return [DataTransformerConfig(id_val="filterByValue", options={
        "type": "exclude", "match": "any",
        "filters": [{"fieldName": STATE_COLUMN,
                     "config": {"id": "equal", "options": {"value": str(AlarmState.NORMAL)}}}],
    })]


def per_shift() -> InfluxQLTarget:
    """Alarms raised (annunciated) per shift name, summed over the time range."""
    return InfluxQLTarget(
        f'SELECT count("kind") AS "{COUNT_COLUMN}" FROM "{schema.ALARM}" {where(*ALL_TAGS)} '
        f'AND {ANNUNCIATED} GROUP BY "{schema.TAG_SHIFT}"'
    ).table()


def flood() -> InfluxQLTarget:
    """Alarms raised per line (= per operator) in each 10 minutes."""
    return InfluxQLTarget(
        f'SELECT count("kind") / {OPERATORS_PER_LINE} AS "{COUNT_COLUMN}" '
        f'FROM "{schema.ALARM}" {where(*ALL_TAGS)} AND {ANNUNCIATED} '
        f'GROUP BY time({FLOOD_WINDOW}), "{schema.TAG_SITE}", "{schema.TAG_LINE}" fill(0)'
    ).alias(series_name(*LINE_TAGS))


LOG_COLUMNS = ("line", "machine", "rule", "severity", "kind", "from_state", "to_state", "by",
               "comment")


def log() -> InfluxQLTarget:
    columns = ", ".join(f'"{c}"' for c in LOG_COLUMNS)
    return InfluxQLTarget(
        f'SELECT {columns} FROM "{schema.ALARM}" {where(*ALL_TAGS)} '
        f"ORDER BY time DESC LIMIT 1000"
    ).table()


class InfluxQLAnnotation(AnnotationQuery):
    """An annotation from an InfluxQL query, in the shape Grafana's InfluxDB datasource
    reads (`query`, `titleColumn`, `textColumn`, `tagsColumn` beside the name)."""

    def __init__(self, name: str, query: str, title: str, text: str, tags: str,
                 color: str) -> None:
        super().__init__(name=name, datasource=DATASOURCE, enable=True, icon_color=color)
        self.query, self.title, self.text, self.tags = " ".join(query.split()), title, text, tags

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "query": self.query, "titleColumn": self.title,
                "textColumn": self.text, "tagsColumn": self.tags}


class Annotation(cogbuilder.Builder[AnnotationQuery]):
    def __init__(self, annotation: InfluxQLAnnotation) -> None:
        self._internal = annotation

    def build(self) -> AnnotationQuery:
        return self._internal


def annotation(*tags: str) -> Annotation:
    """Every alarm transition of the selected machines (or lines) in the time range:
    title the rule, text the transition and who, tags machine, severity and state."""
    return Annotation(InfluxQLAnnotation(
        "Alarms",
        f'SELECT "kind", "by", "to_state", "comment", "machine", "rule", "severity" '
        f'FROM "{schema.ALARM}" {where(*tags)}',
        title="rule", text="kind", tags="machine,severity,to_state,by", color="red"))


def flood_thresholds() -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([
        Threshold(value=None, color="green"),
        Threshold(value=ACCEPTABLE_PER_10_MIN, color="yellow"),
        Threshold(value=FLOOD_PER_10_MIN, color="red"),
    ])


def dashboard() -> Dashboard:
    current = table_panel("Active alarms", [active()], w=24, h=8)
    current.transformations(not_normal())
    floods = timeseries_panel("Alarms per operator per 10 min (ISA-18.2 flood: > 10)",
                              [flood()], w=16, h=8, unit="none")
    floods.interval(FLOOD_WINDOW).thresholds(flood_thresholds()).thresholds_style(
        GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE_AND_AREA))
    return (
        new_dashboard(
            UID, "Alarms",
            "Alarms of the rule engine (docs/alarms.md): which are not in normal, how many "
            "per shift, the ISA-18.2 flood indicator, every transition with who and why.",
            time_from="now-24h",
        )
        .annotation(annotation(*ALL_TAGS))
        .with_row(Row("Now"))
        .with_panel(current)
        .with_row(Row("Load"))
        .with_panel(floods)
        .with_panel(bar_chart_panel("Alarms raised per shift", per_shift(), w=8, h=8,
                                    x_field=schema.TAG_SHIFT, unit="none"))
        .with_row(Row("Log"))
        .with_panel(table_panel("Alarm log", [log()], w=24, h=10))
    )
