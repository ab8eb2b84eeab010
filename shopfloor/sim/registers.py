"""The register image of one simulated device: four Modbus tables laid out from the
machine's points, reads by address range, and writes checked like a PLC would check them.

Pure (no sockets). Each table is a list from address 0 to the end of its last point;
addresses between points read as 0; anything beyond answers ILLEGAL_ADDRESS. A write
must touch only writable points and keep each of them inside its min/max (engineering
units), else it is refused whole with ILLEGAL_ADDRESS / ILLEGAL_VALUE and nothing changes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from shopfloor.shared.control_rules import check_limits
from shopfloor.shared.errors import CodecError
from shopfloor.shared.plant import Machine
from shopfloor.shared.plant import Point as AnyPoint
from shopfloor.shared.protocols.modbus import ModbusPoint as Point
from shopfloor.shared.protocols.modbus.codec import (
    STRUCT_FORMAT,
    Value,
    decode,
    encode,
    encode_raw,
)
from shopfloor.shared.protocols.modbus.enums import Table
from shopfloor.sim.errors import Refused

ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3

# Modbus function code -> table it addresses.
FUNCTION_TABLE = {
    1: Table.COIL,
    5: Table.COIL,
    15: Table.COIL,
    2: Table.DISCRETE_INPUT,
    3: Table.HOLDING,
    6: Table.HOLDING,
    16: Table.HOLDING,
    22: Table.HOLDING,  # mask write register
    23: Table.HOLDING,  # read/write multiple registers
    4: Table.INPUT,
}



@dataclass
class _Table:
    values: list[int] | list[bool]
    owner: list[Point | None]


class DeviceRegisters:
    """Register image of one machine (one Modbus unit id)."""

    def __init__(self, machine: Machine) -> None:
        self.tables: dict[Table, _Table] = {}
        for table in Table:
            points = [p for p in machine.points if isinstance(p, Point) and p.table is table]
            size = max((p.end for p in points), default=0)
            owner: list[Point | None] = [None] * size
            for point in points:
                owner[point.address : point.end] = [point] * point.count
            values: list[int] | list[bool] = [False] * size if table.is_bit else [0] * size
            self.tables[table] = _Table(values, owner)
        self._setters: dict[str, Callable[[Value], None]] = {}

    def read(self, table: Table, address: int, count: int) -> list[int] | list[bool]:
        """Values at [address, address + count); raises Refused(ILLEGAL_ADDRESS) when
        the range is not mapped."""
        values = self.tables[table].values
        if address < 0 or count < 1 or address + count > len(values):
            raise Refused(ILLEGAL_ADDRESS, f"{table} {address}+{count} is not mapped")
        return values[address : address + count]

    def get(self, point: Point) -> Value:
        """The point's current engineering value."""
        values = self.tables[point.table].values
        return decode(point, [int(v) for v in values[point.address : point.end]])

    def set(self, point: AnyPoint, value: Value) -> None:
        """Store `value` (engineering units) in the point's registers, clamped to what
        its type can hold (`encode_clamped`)."""
        setter = self._setters.get(point.name)
        if setter is None:
            assert isinstance(point, Point), point  # a Modbus machine's points
            setter = self._setters[point.name] = self._setter(point)
        setter(value)

    def _setter(self, point: Point) -> Callable[[Value], None]:
        """`set` for one point, its table and encoder looked up once (the simulator
        stores every analog value of every device once a second)."""
        values = self.tables[point.table].values
        address, end = point.address, point.end
        if point.table.is_bit:
            def store_bit(value: Value) -> None:
                values[address] = bool(value)
            return store_bit
        encode_point = registers_encoder(point)

        def store(value: Value) -> None:
            values[address:end] = encode_point(value)  # type: ignore[assignment]
        return store

    def prepare(
        self, table: Table, address: int, values: list[int] | list[bool]
    ) -> list[tuple[Point, Value]]:
        """Check a client's write without applying it; return each touched point with the
        value it would get. Raises Refused (code 2 or 3) when the write must be refused."""
        tab = self.tables[table]
        end = address + len(values)
        if address < 0 or not values or end > len(tab.values):
            raise Refused(ILLEGAL_ADDRESS, f"{table} {address}+{len(values)} is not mapped")
        owners = tab.owner[address:end]
        if any(p is None or not p.writable for p in owners):
            raise Refused(ILLEGAL_ADDRESS, f"{table} {address}+{len(values)} is read-only")
        touched = _touched(owners)
        return [(p, _checked(p, self._merged(tab, p, address, values))) for p in touched]

    @staticmethod
    def _merged(
        tab: _Table, point: Point, address: int, values: list[int] | list[bool]
    ) -> list[int]:
        """The point's registers as they would be after writing `values` at `address`."""
        regs = [int(v) for v in tab.values[point.address : point.end]]
        for i, value in enumerate(values):
            offset = address + i - point.address
            if 0 <= offset < point.count:
                regs[offset] = int(value)
        return regs

    def commit(self, table: Table, address: int, values: list[int] | list[bool]) -> None:
        """Apply a write that `prepare` accepted."""
        stored = [bool(v) for v in values] if table.is_bit else [int(v) for v in values]
        self.tables[table].values[address : address + len(values)] = stored  # type: ignore[assignment]


def _touched(owners: list[Point | None]) -> list[Point]:
    seen: dict[str, Point] = {}
    for point in owners:
        if point is not None:
            seen.setdefault(point.name, point)
    return list(seen.values())


def _checked(point: Point, registers: list[int]) -> Value:
    """Decode a point from its prospective registers; refuse it outside min/max."""
    try:
        value = decode(point, registers)
    except CodecError as exc:
        raise Refused(ILLEGAL_VALUE, f"{point.name}: {exc}") from exc
    if isinstance(value, int | float) and not isinstance(value, bool):
        refusal = check_limits(point, value)
        if refusal is not None:
            raise Refused(ILLEGAL_VALUE, refusal.message)
    return value


def registers_encoder(point: Point) -> Callable[[Value], list[int]]:
    """`encode_clamped` for one register point, with its struct formats, byte and word
    order and integer range worked out once: a number is packed in its type and read
    back as registers in one step (a byte-swapped order reads each register
    little-endian). Anything but a number (and strings) takes `encode_clamped`."""
    data_type = point.type
    fmt = STRUCT_FORMAT.get(data_type)
    if fmt is None:  # string
        return lambda value: encode_clamped(point, value)
    pack = struct.Struct(fmt).pack
    unpack = struct.Struct(("<" if point.order.swap_bytes else ">") + "H" * point.count).unpack
    swap_words = point.order.swap_words
    raw_of = point.raw_of
    zeros = [0] * point.count
    integer = data_type.is_integer
    low, high = data_type.int_range if integer else (0, 0)

    def encode_number(value: Value) -> list[int]:
        if not isinstance(value, int | float) or (not integer and isinstance(value, bool)):
            return encode_clamped(point, value)
        try:
            raw = min(max(int(raw_of(value)), low), high) if integer else raw_of(value)
            registers = unpack(pack(raw))
        except (ValueError, OverflowError, struct.error):
            return zeros.copy()
        return list(reversed(registers)) if swap_words else list(registers)

    return encode_number


def encode_clamped(point: Point, value: Value) -> list[int]:
    """`codec.encode`, but an integer that does not fit its type is clamped to it."""
    try:
        if point.type.is_integer and isinstance(value, int | float):
            low, high = point.type.int_range
            raw = int(point.raw_of(value))  # not finite: ValueError/OverflowError
            return encode_raw(point.type, min(max(raw, low), high), point.order)
        return encode(point, value)
    except (CodecError, ValueError, OverflowError):
        return [0] * point.count
