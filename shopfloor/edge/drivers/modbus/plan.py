"""Read planning (pure): which Modbus requests fetch a set of points.

Adjacent points of one table are coalesced into one request as long as the request
stays within `max_registers` and the hole between two points is at most `max_gap`
registers (reading a few unused registers is cheaper than another round trip).
Bit tables (coil, discrete_input) use the same rule counted in bits, with Modbus'
limit of 2000 bits per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shopfloor.edge.drivers.modbus.blockcodec import BlockDecoder
from shopfloor.edge.drivers.modbus.tcpread import Request
from shopfloor.shared.protocols.modbus import ModbusPoint as Point
from shopfloor.shared.protocols.modbus.enums import Table

MAX_BITS_PER_READ = 2000
"""Modbus limit for read coils / read discrete inputs (function codes 1 and 2)."""


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request: `count` registers (or bits) of `table` from `address`."""

    table: Table
    address: int
    count: int
    points: tuple[Point, ...]
    spans: tuple[tuple[Point, int, int], ...] = field(init=False, repr=False, compare=False)
    """(point, start, end) offsets into the response, computed once (polled every second)."""
    decoder: BlockDecoder = field(init=False, repr=False, compare=False)
    """Decodes the block's response (wire bytes) in one unpack, compiled once."""
    request: Request = field(init=False, repr=False, compare=False)
    """What the TCP reader sends (function code, address, count) and expects back."""

    def __post_init__(self) -> None:
        spans = tuple(
            (p, p.address - self.address, p.address - self.address + p.count) for p in self.points
        )
        object.__setattr__(self, "spans", spans)
        decoder = BlockDecoder(self.address, self.points, self.count, self.table.is_bit)
        object.__setattr__(self, "decoder", decoder)
        object.__setattr__(self, "request", Request.of(self.table, self.address, self.count))

    def slice(self, point: Point, data: Sequence[int | bool]) -> list[int | bool]:
        """The part of this block's response that holds `point`."""
        start = point.address - self.address
        return list(data[start : start + point.count])


def plan_reads(
    points: Iterable[Point], max_registers: int = 125, max_gap: int = 8
) -> list[ReadBlock]:
    """Coalesce points into read requests, per table in address order.

    A single point longer than `max_registers` still gets one request of its own size
    (it cannot be split). Tables come out in a fixed order (coil, discrete_input,
    holding, input) so that the plan is deterministic."""
    blocks: list[ReadBlock] = []
    for table in Table:
        in_table = sorted((p for p in points if p.table is table), key=lambda p: p.address)
        limit = MAX_BITS_PER_READ if table.is_bit else max_registers
        blocks.extend(_coalesce(table, in_table, limit, max_gap))
    return blocks


def _coalesce(table: Table, points: list[Point], limit: int, max_gap: int) -> list[ReadBlock]:
    blocks: list[ReadBlock] = []
    group: list[Point] = []
    start = end = 0
    for point in points:
        fits = point.address - end <= max_gap and max(end, point.end) - start <= limit
        if group and fits:
            group.append(point)
            end = max(end, point.end)
            continue
        if group:
            blocks.append(ReadBlock(table, start, end - start, tuple(group)))
        group, start, end = [point], point.address, point.end
    if group:
        blocks.append(ReadBlock(table, start, end - start, tuple(group)))
    return blocks
