"""The simulator's lean answer to a healthy read over Modbus TCP: straight from the
register image to the answer frame's bytes, without pymodbus' request and response
objects (about four of five requests a simulator serves in a load test are such reads).

Pure (no sockets). `answer` takes the bytes of one request and gives the whole answer
frame, or None for anything it does not answer itself: other function codes, a length
that is not a plain read's, a count outside what pymodbus accepts, an address range the
device does not map, an unknown unit id, a unit in a fault mode. Those take pymodbus'
path (`server.PipelinedHandler`), which answers them as before; a property test checks
that both paths give the same bytes for every read.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING

from shopfloor.sim.faults import FaultMode
from shopfloor.sim.registers import FUNCTION_TABLE

if TYPE_CHECKING:
    from shopfloor.sim.device import SimDevice

REQUEST = struct.Struct(">HHHBBHH")
"""A read request: transaction id, protocol id (0), length (6), unit, function,
address, count."""
REQUEST_SIZE = REQUEST.size
_HEAD = struct.Struct(">HHHBBB")  # transaction, protocol, length, unit, function, bytes

MAX_COUNT = {1: 2000, 2: 2000, 3: 125, 4: 125}
"""Per read function: the largest count pymodbus' request accepts (its MAX_COUNT); a
larger one is pymodbus' to refuse."""
_NORMAL = FaultMode.NORMAL


def answer(devices: Mapping[int, SimDevice], data: bytes, at: int) -> bytes | None:
    """The answer frame to the read request at `data[at:at + REQUEST_SIZE]`, or None
    when pymodbus' path must answer it."""
    tid, protocol, length, unit, function, address, count = REQUEST.unpack_from(data, at)
    top = MAX_COUNT.get(function)
    if top is None or length != 6 or protocol != 0 or not 1 <= count <= top:
        return None
    device = devices.get(unit)
    if device is None or device.fault.mode is not _NORMAL:
        return None
    values = device.registers.tables[FUNCTION_TABLE[function]].values
    end = address + count
    if end > len(values):
        return None
    if function <= 2:
        payload = _bits(values[address:end], count)
    else:
        payload = _registers(count).pack(*values[address:end])
    size = len(payload)
    return _HEAD.pack(tid, 0, size + 3, unit, function, size) + payload


def _bits(bits: list[int] | list[bool], count: int) -> bytes:
    """Bits packed eight to a byte, the first in the lowest bit (Modbus' order)."""
    packed = 0
    for index, bit in enumerate(bits):
        if bit:
            packed |= 1 << index
    return packed.to_bytes((count + 7) // 8, "little")


@cache
def _registers(count: int) -> struct.Struct:
    return struct.Struct(f">{count}H")
