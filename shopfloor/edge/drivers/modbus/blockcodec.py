"""Decoding one read block's response in one step (pure), compiled once per block.

A register block's response is the bytes Modbus carries (big-endian registers). At
plan time every point of the block becomes one field of a single `struct.Struct`, the
unused registers between them pad bytes, so that one `unpack` gives every raw value.
Byte and word orders are folded in at plan time too: when a point's order is not
ABCD (or two points overlap), the block gets a byte permutation (`itemgetter`) that
rearranges the response into ABCD layout first. Scale/offset, the NaN/inf check and
string trimming follow, per field, as `codec.decode` defines them (the tests
compare both for every type and order). A bit block (coils, discrete inputs) is read
as one little-endian integer (Modbus packs bits LSB first). A full answer goes through
a function generated for the block (straight-line code, no loop over fields); a short
one through the general loop.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from math import isfinite
from operator import itemgetter
from typing import Any

from shopfloor.shared.enums import DataType
from shopfloor.shared.protocols.modbus import ModbusPoint as Point
from shopfloor.shared.protocols.modbus.codec import STRUCT_FORMAT, Value
from shopfloor.shared.protocols.modbus.enums import ByteOrder

# What a field needs after the unpack.
_PLAIN, _SCALED, _FLOAT, _FLOAT_SCALED, _BOOL, _STRING = range(6)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: int
    scale: float
    offset: float
    end_byte: int
    """One past the point's last byte in the response (short answers make it bad)."""


class BlockDecoder:
    """Decodes the response of one read block: `decode(raw) -> (values, bad)`."""

    __slots__ = ("_bits", "_fields", "_full", "_permute", "_size", "_struct")

    def __init__(self, base: int, points: Sequence[Point], count: int, bits: bool) -> None:
        self._bits = [(p.name, p.address - base) for p in points] if bits else []
        self._size = (count + 7) // 8 if bits else 2 * count
        self._fields: list[_Field] = []
        self._permute: Any = None
        self._struct = struct.Struct("")
        if bits:
            self._full = _bits_function(tuple(self._bits))
        else:
            permuted = self._compile(base, points)
            self._full = _registers_function(tuple(self._fields), self._struct.format, permuted)

    def _compile(self, base: int, points: Sequence[Point]) -> tuple[int, ...] | None:
        """Fields, struct and permutation; returns the permutation's byte indexes."""
        layout = sorted(points, key=lambda p: p.address)
        source: list[int] = []  # response byte index of each byte the struct reads
        formats: list[str] = []
        for point in layout:
            start = 2 * (point.address - base)
            source.extend(start + i for i in _byte_order(point))
            formats.append(_format(point))
            self._fields.append(_Field(
                point.name, _kind(point), point.scale, point.offset, start + 2 * point.count
            ))
        if source == sorted(set(source)):  # plain ABCD, no overlap: pad bytes skip the holes
            self._struct = struct.Struct(">" + "".join(_padded(layout, formats, base)))
            return None
        self._permute = itemgetter(*source)  # a point is at least 2 bytes: a tuple
        self._struct = struct.Struct(">" + "".join(formats))
        return tuple(source)

    def decode(self, raw: bytes) -> tuple[dict[str, Value], set[str]]:
        """Every point's value; points the response does not cover (too short) or whose
        value is not finite go in the bad set instead."""
        if len(raw) >= self._size:  # a full answer: every field is there
            return self._full(raw)
        if self._bits:
            return self._decode_bits(raw)
        return self._decode_short(raw, len(raw))

    def _decode_short(self, raw: bytes, available: int) -> tuple[dict[str, Value], set[str]]:
        """An answer shorter than the block: the fields it does not cover are bad."""
        raw = raw.ljust(self._size, b"\x00")
        data = bytes(self._permute(raw)) if self._permute is not None else raw
        values: dict[str, Value] = {}
        bad: set[str] = set()
        for field, raw_value in zip(self._fields, self._struct.unpack_from(data), strict=True):
            if field.end_byte > available:
                bad.add(field.name)
                continue
            value = _finish(field, raw_value)
            if value is None:
                bad.add(field.name)
            else:
                values[field.name] = value
        return values, bad

    def _decode_bits(self, raw: bytes) -> tuple[dict[str, Value], set[str]]:
        word = int.from_bytes(raw, "little")
        have = 8 * len(raw)
        values: dict[str, Value] = {}
        bad: set[str] = set()
        for name, offset in self._bits:
            if offset < have:
                values[name] = bool(word >> offset & 1)
            else:
                bad.add(name)
        return values, bad


@lru_cache(maxsize=1024)
def _registers_function(
    fields: tuple[_Field, ...], fmt: str, permuted: tuple[int, ...] | None
) -> Callable[[bytes], tuple[dict[str, Value], set[str]]]:
    """The full-answer decoder of a register block, as one straight-line function:
    one unpack, one dict display, one test of every float field at once (`x - x` is 0.0
    for a finite x and NaN for an infinite or NaN one), no loop and no branch per field.
    The same values as `_finish` gives field by field (tests compare both with
    `codec.decode`), at about a third of the loop's cost: the decode ran for every poll.

    The source is generated from field *positions* only (`v3`, `k3`, `s3`): names,
    scales and offsets from the plant file reach it as bound values, never as text.
    Blocks alike (machines of one model: the same points, formats and orders) share one
    function: thousands of machines cost one code object, not thousands."""
    n = len(fields)
    items, floats = [], []
    for i, f in enumerate(fields):
        value = {
            _PLAIN: f"v{i}",
            _SCALED: f"v{i} * s{i} + o{i}",
            _FLOAT: f"v{i}",
            _FLOAT_SCALED: f"v{i} * s{i} + o{i}",
            _BOOL: f"v{i} != 0",
            _STRING: f'v{i}.rstrip(b"\\x00 ").decode("latin-1")',
        }[f.kind]
        items.append(f"k{i}: {value}")
        if f.kind in (_FLOAT, _FLOAT_SCALED):
            floats.append(i)
    unpacked = "".join(f"v{i}, " for i in range(n))
    data = "bytes(permute(raw))" if permuted is not None else "raw"
    lines = [
        "def full(raw):",
        f"    {unpacked}= unpack({data})",
    ]
    if floats:  # a NaN or infinity makes the sum NaN: then find which are bad
        test = " + ".join(f"(v{i} - v{i})" for i in floats)
        lines += [
            f"    if {test} != 0.0:",
            f"        return not_finite(({unpacked}), {{{', '.join(items)}}})",
        ]
    lines.append(f"    return {{{', '.join(items)}}}, set()")
    namespace: dict[str, Any] = {
        "unpack": struct.Struct(fmt).unpack_from,
        "permute": itemgetter(*permuted) if permuted is not None else None,
        "not_finite": partial(_not_finite, [(i, fields[i].name) for i in floats]),
    }
    for i, f in enumerate(fields):
        namespace.update({f"k{i}": f.name, f"s{i}": f.scale, f"o{i}": f.offset})
    exec("\n".join(lines), namespace)  # noqa: S102 - source made of positions only
    return namespace["full"]  # type: ignore[no-any-return]


def _not_finite(floats: list[tuple[int, str]], raw: tuple[Any, ...],
                values: dict[str, Value]) -> tuple[dict[str, Value], set[str]]:
    """The values without the float fields whose raw value is NaN or infinite."""
    bad = set()
    for i, name in floats:
        if not isfinite(raw[i]):
            del values[name]
            bad.add(name)
    return values, bad


@lru_cache(maxsize=1024)
def _bits_function(
    bits: tuple[tuple[str, int], ...],
) -> Callable[[bytes], tuple[dict[str, Value], set[str]]]:
    """The full-answer decoder of a bit block (see `_registers_function`): one
    little-endian integer, one mask test per point."""
    items = ", ".join(f"k{i}: word & {1 << offset} != 0" for i, (_, offset) in enumerate(bits))
    source = f"def full(raw):\n    word = from_bytes(raw, 'little')\n    return {{{items}}}, set()"
    namespace: dict[str, Any] = {"from_bytes": int.from_bytes}
    namespace.update({f"k{i}": name for i, (name, _) in enumerate(bits)})
    exec(source, namespace)  # noqa: S102 - source made of positions and masks only
    return namespace["full"]  # type: ignore[no-any-return]


def _byte_order(point: Point) -> list[int]:
    """Offsets (from the point's first byte) of its bytes in ABCD order."""
    n = point.count
    order = point.order
    if point.type is DataType.BOOL:
        order = ByteOrder.ABCD  # any nonzero register is true, whatever its byte order
    swap_words = order.swap_words and point.type is not DataType.STRING
    out = []
    for j in range(2 * n):
        register, byte = divmod(j, 2)
        if swap_words:
            register = n - 1 - register
        if order.swap_bytes:
            byte = 1 - byte
        out.append(2 * register + byte)
    return out


def _format(point: Point) -> str:
    if point.type is DataType.STRING:
        return f"{2 * point.count}s"
    if point.type is DataType.BOOL:
        return "H"
    return STRUCT_FORMAT[point.type][1:]


def _padded(layout: list[Point], formats: list[str], base: int) -> list[str]:
    out: list[str] = []
    at = base
    for point, fmt in zip(layout, formats, strict=True):
        if point.address > at:
            out.append(f"{2 * (point.address - at)}x")
        out.append(fmt)
        at = point.end
    return out


def _kind(point: Point) -> int:
    if point.type is DataType.BOOL:
        return _BOOL
    if point.type is DataType.STRING:
        return _STRING
    plain = point.scale == 1 and point.offset == 0
    if point.type.is_float:
        return _FLOAT if plain else _FLOAT_SCALED
    return _PLAIN if plain else _SCALED


def _finish(field: _Field, raw: Any) -> Value | None:
    """The engineering value of one field (None: not finite, the point is bad)."""
    kind = field.kind
    if kind == _PLAIN:
        return raw  # type: ignore[no-any-return]
    if kind == _SCALED:
        return raw * field.scale + field.offset  # type: ignore[no-any-return]
    if kind == _BOOL:
        return bool(raw)
    if kind == _STRING:
        return raw.rstrip(b"\x00 ").decode("latin-1")  # type: ignore[no-any-return]
    if not math.isfinite(raw):
        return None
    return raw if kind == _FLOAT else raw * field.scale + field.offset  # type: ignore[no-any-return]
