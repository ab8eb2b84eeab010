"""The InfluxDB schema, defined once: measurement names, tag keys, reserved fields, and a
fast line-protocol builder. Documented in docs/influxdb-schema.md.

Tags are bounded: site, line, machine (and for KPIs: window kind, shift name, buffer;
for state_duration: the state and a reason from the plant file, else `other`); never
sequence numbers or ids of single samples.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

# Measurements
TELEMETRY = "telemetry"  # one point per sample; a field per plant point; field SEQ_FIELD
MACHINE_STATE = "machine_state"  # one point per state change, at its start
STATE_DURATION = "state_duration"  # one point per finished state, at its start (below)
AGENT_STATUS = "agent_status"  # birth / last will of edge agents
OEE = "oee"  # KPI snapshots (current shift, rolling window) and final shift records
OEE_ROLLUP = "oee_rollup"  # additive per-minute aggregates (sum them for any window)
WIP = "wip"  # work in progress per line and buffer
WIP_ANCHOR = "wip_anchor"  # stocktakes (API): tags site, line, buffer; field count (docs/api.md)
WORK_ORDER = "work_order"  # per-order progress
CONTROL_AUDIT = "control_audit"  # every command and its result
COLLECTOR_STATS = "collector_stats"  # the collector's own counters (lost, dead letters)
DOWNTIME = "downtime"  # downtime events and their classification, one point per part (API)
ALARM = "alarm"  # alarm lifecycle transitions, at their event time (docs/alarms.md)
EVENT_MEASUREMENTS = frozenset({DOWNTIME, ALARM})
"""Measurements of events: a time range without one holds none (not a gap in the data)."""

# Tag keys
TAG_SITE = "site"
TAG_LINE = "line"
TAG_MACHINE = "machine"
TAG_AGENT = "agent"  # agent_status: the edge agent id
TAG_COLLECTOR = "collector"  # collector_stats: the collector's MQTT client id
# KPI tags (fields of oee, oee_rollup, wip, work_order: docs/oee.md)
TAG_WINDOW = "window"  # oee/wip: shift | shift_final | rolling; work_order: minute | order
TAG_SHIFT = "shift"  # oee/wip: shift name (its instance is the production date field)
TAG_BUFFER = "buffer"  # wip, wip_anchor: the buffer's upstream station id
TAG_WORK_ORDER = "work_order"  # work_order: the order id
# state_duration tags (with site, line, machine): the finished state and its reason,
# the reason bounded to the plant's known reasons (else REASON_OTHER, none: REASON_NONE)
TAG_STATE = "state"
TAG_REASON = "reason"
REASON_OTHER = "other"
REASON_NONE = "none"
DURATION_FIELD = "duration_s"  # state_duration: seconds from the state's since to the next
# downtime tags (with site, line, machine): the part's reason code (or `unclassified`),
# its category and its loss (unplanned | setup | planned | unclassified)
TAG_CATEGORY = "category"
TAG_LOSS = "loss"
# alarm tags (with site, line, machine): the rule kind and its severity
TAG_RULE = "rule"
TAG_SEVERITY = "severity"
ALARM_INSTANCE_TAGS = (TAG_SITE, TAG_LINE, TAG_MACHINE, TAG_RULE)
"""The tags naming one alarm instance; an `alarm` point also has `severity` and `shift`
(which change within an instance's life: group the latest state by these only)."""

SEQ_FIELD = "_seq"  # sequence number of a telemetry sample (a field, never a tag)
EPOCH_FIELD = "_epoch"  # the sample's stream epoch, when the edge sends one (a field)
PRECISION = "ms"  # timestamps are written in milliseconds

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": ""})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": ""})


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ONE_MS = dt.timedelta(milliseconds=1)


def to_ms(when: dt.datetime) -> int:
    """Aware datetime -> integer ms since the epoch, the precision of every write (exact:
    floors sub-ms parts, no float rounding)."""
    return (when - EPOCH) // ONE_MS


def escape_tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def _field_value(value: object) -> str | None:
    """Line-protocol field value; None for values that cannot be stored (NaN, inf)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


field_value = _field_value  # public: for writers that build lines field by field


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, object],
    ts_ms: int,
) -> str | None:
    """One line of line protocol (timestamp in ms); None when no field is storable.
    Tags are sorted (InfluxDB's preferred order); empty tag values are left out."""
    tag_part = "".join(
        f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v
    )
    encoded = []
    for key, value in fields.items():
        text = _field_value(value)
        if text is not None:
            encoded.append(f"{escape_tag(key)}={text}")
    if not encoded:
        return None
    return f"{measurement.translate(_MEASUREMENT_ESCAPES)}{tag_part} {','.join(encoded)} {ts_ms}"


def quote_ident(name: str) -> str:
    """InfluxQL identifier quoting: "name" with \\ and \" escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """InfluxQL string literal: 'value' with \\ and \' escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
