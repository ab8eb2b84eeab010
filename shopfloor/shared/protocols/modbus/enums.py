"""Modbus's own enums: data tables, byte orders of multi-register values, transports."""

from __future__ import annotations

from enum import StrEnum


class Table(StrEnum):
    """Modbus data table."""

    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bit(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE_INPUT)

    @property
    def is_writable(self) -> bool:
        return self in (Table.COIL, Table.HOLDING)


class ByteOrder(StrEnum):
    """Byte layout of a multi-register value, written for a 32-bit value whose big-endian
    bytes are A B C D. ABCD: big-endian (Modbus default). BADC: bytes swapped inside each
    register. CDAB: registers (words) in reverse order. DCBA: both, i.e. little-endian.
    The same two swaps apply to 64-bit values and to strings (byte swap only)."""

    ABCD = "ABCD"
    BADC = "BADC"
    CDAB = "CDAB"
    DCBA = "DCBA"

    @property
    def swap_bytes(self) -> bool:
        return self in (ByteOrder.BADC, ByteOrder.DCBA)

    @property
    def swap_words(self) -> bool:
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)


class Transport(StrEnum):
    """How the edge reaches a Modbus device."""

    TCP = "tcp"
    RTU = "rtu"
    RTU_OVER_TCP = "rtu_over_tcp"
