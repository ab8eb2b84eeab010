"""OPC UA values into samples (pure): a DataValue's variant into the point's engineering
value, its status code into quality, its source timestamp into the event time; and the
type check a node must pass when the edge connects."""

from __future__ import annotations

import datetime as dt
import math
import struct
from typing import Any

from asyncua import ua

from shopfloor.shared.contract import PointValue as Value
from shopfloor.shared.enums import DataType
from shopfloor.shared.errors import CodecError
from shopfloor.shared.plant import Point
from shopfloor.shared.protocols.opcua import VARIANT_OF

ENUMERATION_TYPES = frozenset({DataType.INT32})
"""Declared types a node of an enumeration DataType may be read as (enums are Int32)."""
BUILTIN_MAX = 25
"""ns=0 DataType ids up to this are built-in types (i=1 Boolean ... i=25 DiagnosticInfo)."""


def expected_variant(point: Point) -> ua.VariantType:
    return ua.VariantType[VARIANT_OF[point.type.value]]


def node_type_problem(point: Point, data_type: Any, value_rank: Any) -> str | None:
    """Why the node (its DataType and ValueRank attributes) cannot be read as the point
    says, or None. Arrays are refused; an enumeration node reads as int32."""
    if isinstance(value_rank, int) and value_rank >= 0:
        return f"the node is an array (ValueRank {value_rank}); only scalar nodes are supported"
    if not isinstance(data_type, ua.NodeId):
        return None  # the server does not say: the values' variants are checked instead
    want = expected_variant(point)
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int) \
            and data_type.Identifier <= BUILTIN_MAX:
        if data_type.Identifier == want.value:
            return None
        have = ua.VariantType(data_type.Identifier).name
        return f"the node holds {have}, the point says {point.type} ({want.name})"
    if point.type in ENUMERATION_TYPES:
        return None  # an enumeration (or a subtype of a built-in integer): Int32 values
    return (f"the node's DataType {data_type.to_string()} is not a built-in type; "
            f"type {point.type} fits built-in {want.name} (enumerations: int32)")


def to_value(point: Point, variant: ua.Variant | None) -> Value:
    """The engineering value of a good DataValue's variant. CodecError when it is not of
    the point's type (or an array, or a NaN/infinite float)."""
    if variant is None or variant.Value is None:
        raise CodecError(f"{point.name}: the node has no value")
    if variant.is_array or isinstance(variant.Value, list):
        raise CodecError(f"{point.name}: the node holds an array")
    want = expected_variant(point)
    if variant.VariantType != want:
        raise CodecError(f"{point.name}: the node holds {variant.VariantType.name}, "
                         f"not {want.name}")
    raw = variant.Value
    if point.type is DataType.DATETIME:
        return iso_utc(raw)
    if isinstance(raw, float) and not math.isfinite(raw):
        raise CodecError(f"{point.name}: non-finite value {raw}")
    return point.value_of(raw)


def to_variant(point: Point, value: Value) -> ua.Variant:
    """The variant that writes engineering `value` to the point's node. CodecError."""
    want = expected_variant(point)
    if point.type in (DataType.BOOL, DataType.STRING):
        return ua.Variant(value, want)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{point.name}: expected a number, got {value!r}")
    raw = point.raw_of(value)
    return ua.Variant(float(raw) if point.type.is_float else int(raw), want)


def held(point: Point, value: Value) -> Value:
    """The engineering value the node holds after `value` is written: integers rounded,
    a Float node's single precision (what the read-back must equal)."""
    raw = to_variant(point, value).Value
    if point.type is DataType.FLOAT32:
        (raw,) = struct.unpack(">f", struct.pack(">f", raw))
    return point.value_of(raw)


def quality_is_good(status: ua.StatusCode | None) -> bool:
    """Good values are published; Bad and Uncertain ones go into `quality` as bad (the
    contract has one quality: not trustworthy)."""
    return status is None or status.is_good()


def status_name(status: ua.StatusCode | int | None) -> str:
    if status is None:
        return "Good"
    code = status.value if isinstance(status, ua.StatusCode) else status
    try:
        return str(ua.StatusCode(code).name)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - an unknown code still gets a name
        return f"0x{code:08X}"


def as_utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime (asyncua gives naive UTC or aware datetimes)."""
    aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC)


def iso_utc(value: dt.datetime) -> str:
    """A DateTime as ISO 8601 in UTC."""
    return as_utc(value).isoformat().replace("+00:00", "Z")


def event_time(data: ua.DataValue, fallback: dt.datetime) -> dt.datetime:
    """The value's source timestamp (UTC) when the server gives one, else its server
    timestamp, else `fallback`."""
    ts = data.SourceTimestamp or data.ServerTimestamp
    return fallback if ts is None else as_utc(ts)
