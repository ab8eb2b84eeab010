"""The value image of one simulated OPC UA device: the raw value each point's node holds
(what the machine model shows, in the node's own type), and client writes checked like a
PLC would check them. Pure (no sockets); sim/opcua_server.py serves it."""

from __future__ import annotations

import math

from shopfloor.shared import control_rules
from shopfloor.shared.enums import DataType
from shopfloor.shared.errors import CodecError
from shopfloor.shared.plant import Machine, Point
from shopfloor.shared.protocols.base import PointValue as Value
from shopfloor.sim.errors import Refused
from shopfloor.sim.registers import ILLEGAL_ADDRESS, ILLEGAL_VALUE


class NodeImage:
    """Raw values of one machine's nodes, by point name; `dirty` lists the points
    changed since the server last copied them into its address space."""

    def __init__(self, machine: Machine) -> None:
        self.points = {p.name: p for p in machine.points}
        self.raw: dict[str, Value] = {p.name: _zero(p) for p in machine.points}
        self.dirty: set[str] = set(self.raw)

    def get(self, point: Point) -> Value:
        """The point's current engineering value."""
        return point.value_of(self.raw[point.name])

    def set(self, point: Point, value: Value) -> None:
        """Store `value` (engineering units), clamped to what the node's type holds."""
        raw = _clamped(point, value)
        if self.raw.get(point.name) != raw:
            self.raw[point.name] = raw
            self.dirty.add(point.name)

    def check_write(self, point: Point, raw: Value) -> Value:
        """A client writes `raw` to the point's node: the engineering value it means, or
        Refused (nothing changes) for a read-only point or a value outside min/max."""
        if not point.writable:
            raise Refused(ILLEGAL_ADDRESS, f"{point.name} is read-only")
        try:
            value = point.value_of(raw)
        except CodecError as exc:
            raise Refused(ILLEGAL_VALUE, str(exc)) from exc
        if isinstance(value, int | float) and not isinstance(value, bool):
            refusal = control_rules.check_limits(point, value)  # the one min/max rule
            if refusal is not None:
                raise Refused(ILLEGAL_VALUE, refusal.message)
        return value

    def commit(self, point: Point, raw: Value) -> None:
        """Apply a write that `check_write` accepted (the server stored the node)."""
        self.raw[point.name] = raw
        self.dirty.discard(point.name)


def _zero(point: Point) -> Value:
    if point.type is DataType.BOOL:
        return False
    if point.type in (DataType.STRING, DataType.DATETIME):
        return ""
    return 0.0 if point.type.is_float else 0


def _clamped(point: Point, value: Value) -> Value:
    if point.type is DataType.BOOL:
        return bool(value)
    if point.type in (DataType.STRING, DataType.DATETIME):
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _zero(point)
    raw = point.raw_of(value)
    if not math.isfinite(raw):
        return _zero(point)
    if point.type.is_integer:
        low, high = point.type.int_range
        return min(max(int(raw), low), high)
    return float(raw)
