"""Modbus register <-> value conversion for every data type and byte order, in one place.

Pure functions: `decode(point, registers)` gives the engineering value (scale and offset
applied); `encode(point, value)` gives the registers to write. Registers are 16-bit
unsigned ints as Modbus carries them. Bit tables (coil, discrete_input) carry bools.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from shopfloor.shared.enums import DataType
from shopfloor.shared.errors import CodecError
from shopfloor.shared.protocols.base import PointValue as Value
from shopfloor.shared.protocols.modbus.enums import ByteOrder

if TYPE_CHECKING:
    from shopfloor.shared.protocols.modbus import ModbusPoint as Point

__all__ = ["REGISTER_TYPES", "STRUCT_FORMAT", "Value", "decode", "decode_raw", "encode",
           "encode_raw", "register_count"]

STRUCT_FORMAT = {
    # struct format (big-endian) per numeric type; edge.blockcodec builds on it too.
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}
REGISTER_TYPES = frozenset({*STRUCT_FORMAT, DataType.BOOL, DataType.STRING})
"""The data types a register map can hold (datetime is OPC UA's alone)."""


def register_count(data_type: DataType, length: int | None = None) -> int:
    """Number of 16-bit registers (or bits, for bool) a value occupies."""
    if data_type is DataType.BOOL:
        return 1
    if data_type is DataType.STRING:
        if not length or length < 1:
            raise CodecError("string points need a length (characters) >= 1")
        return (length + 1) // 2
    return data_type.bits // 16


def _to_bytes(registers: list[int], order: ByteOrder) -> bytes:
    regs = list(reversed(registers)) if order.swap_words else registers
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    if order.swap_bytes:
        raw = _swap_pairs(raw)
    return raw


def _from_bytes(raw: bytes, order: ByteOrder) -> list[int]:
    if order.swap_bytes:
        raw = _swap_pairs(raw)
    regs = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return list(reversed(regs)) if order.swap_words else regs


def _swap_pairs(raw: bytes) -> bytes:
    swapped = bytearray(raw)
    swapped[0::2], swapped[1::2] = raw[1::2], raw[0::2]
    return bytes(swapped)


def decode_raw(
    data_type: DataType, registers: list[int], order: ByteOrder = ByteOrder.ABCD
) -> Value:
    """Registers -> raw value (no scaling). Strings drop trailing NULs and spaces."""
    if data_type is DataType.BOOL:
        return bool(registers[0])
    if data_type is DataType.STRING:
        # Words are never reordered for strings; only the bytes inside a register.
        raw = _to_bytes(registers, ByteOrder.BADC if order.swap_bytes else ByteOrder.ABCD)
        return raw.rstrip(b"\x00 ").decode("latin-1")
    expected = data_type.bits // 16
    if len(registers) != expected:
        raise CodecError(f"{data_type} needs {expected} registers, got {len(registers)}")
    (value,) = struct.unpack(STRUCT_FORMAT[data_type], _to_bytes(registers, order))
    return value  # type: ignore[no-any-return]


def encode_raw(
    data_type: DataType,
    value: Value,
    order: ByteOrder = ByteOrder.ABCD,
    length: int | None = None,
) -> list[int]:
    """Raw value -> registers. Raises CodecError when the value does not fit the type."""
    if data_type is DataType.BOOL:
        return [1 if value else 0]
    if data_type is DataType.STRING:
        count = register_count(data_type, length)
        raw = str(value).encode("latin-1", errors="replace")[: count * 2].ljust(count * 2, b"\x00")
        return _from_bytes(raw, ByteOrder.BADC if order.swap_bytes else ByteOrder.ABCD)
    try:
        raw = struct.pack(STRUCT_FORMAT[data_type], value)
    except (struct.error, TypeError, OverflowError) as exc:
        raise CodecError(f"{value!r} does not fit {data_type}") from exc
    return _from_bytes(raw, order)


def decode(point: Point, registers: list[int]) -> Value:
    """Registers -> engineering value: raw * scale + offset (numeric types only).
    Integers stay ints when scale is 1 and offset 0; NaN/inf floats raise CodecError."""
    return point.value_of(decode_raw(point.type, registers, point.order))


def encode(point: Point, value: Value) -> list[int]:
    """Engineering value -> registers: the point's raw value (`Point.raw_of`)."""
    if point.type in (DataType.BOOL, DataType.STRING):
        return encode_raw(point.type, value, point.order, point.length)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"{point.name}: expected a number, got {value!r}")
    raw = point.raw_of(value)
    if point.type.is_integer and not isinstance(raw, int):
        raise CodecError(f"{point.name}: {value!r} is not finite")
    return encode_raw(point.type, raw, point.order)
