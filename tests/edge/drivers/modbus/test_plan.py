"""Read planning, table-driven: which requests a register map turns into."""

from __future__ import annotations

import pytest

from shopfloor.edge.drivers.modbus.plan import plan_reads
from shopfloor.shared.protocols.modbus import ModbusPoint as Point


def pt(
    name: str, address: int, type_: str = "uint16", table: str = "holding", **kw: object
) -> Point:
    return Point.model_validate(
        {"name": name, "table": table, "address": address, "type": type_, **kw}
    )


# (case, points, max_registers, max_gap, expected [(table, address, count, [names])])
CASES = [
    ("one point", [pt("a", 0)], 125, 8, [("holding", 0, 1, ["a"])]),
    (
        "adjacent merge",
        [pt("a", 0), pt("b", 1, "uint32"), pt("c", 3)],
        125,
        0,
        [("holding", 0, 4, ["a", "b", "c"])],
    ),
    ("gap within max_gap", [pt("a", 0), pt("b", 5)], 125, 4, [("holding", 0, 6, ["a", "b"])]),
    (
        "gap beyond max_gap",
        [pt("a", 0), pt("b", 6)],
        125,
        4,
        [("holding", 0, 1, ["a"]), ("holding", 6, 1, ["b"])],
    ),
    (
        "max_gap 0 splits any hole",
        [pt("a", 0), pt("b", 2)],
        125,
        0,
        [("holding", 0, 1, ["a"]), ("holding", 2, 1, ["b"])],
    ),
    (
        "unsorted input",
        [pt("b", 10), pt("a", 0, "float64")],
        125,
        8,
        [("holding", 0, 11, ["a", "b"])],
    ),
    (
        "max_registers splits",
        [pt("a", 0, "uint64"), pt("b", 4, "uint64"), pt("c", 8)],
        6,
        8,
        [("holding", 0, 4, ["a"]), ("holding", 4, 5, ["b", "c"])],
    ),
    (
        "exactly max_registers",
        [pt("a", 0, "uint64"), pt("b", 4, "uint32")],
        6,
        0,
        [("holding", 0, 6, ["a", "b"])],
    ),
    (
        "a point longer than the limit stays whole",
        [pt("s", 0, "string", length=20)],
        4,
        8,
        [("holding", 0, 10, ["s"])],
    ),
    (
        "125 limit",
        [pt("a", 0), pt("b", 124), pt("c", 125)],
        125,
        200,
        [("holding", 0, 125, ["a", "b"]), ("holding", 125, 1, ["c"])],
    ),
    (
        "tables never mix",
        [
            pt("h", 0),
            pt("i", 1, table="input"),
            pt("c", 0, "bool", table="coil"),
            pt("d", 0, "bool", table="discrete_input"),
        ],
        125,
        8,
        [
            ("coil", 0, 1, ["c"]),
            ("discrete_input", 0, 1, ["d"]),
            ("holding", 0, 1, ["h"]),
            ("input", 1, 1, ["i"]),
        ],
    ),
    (
        "bits coalesce",
        [pt("c0", 0, "bool", table="coil"), pt("c5", 5, "bool", table="coil")],
        2,
        8,
        [("coil", 0, 6, ["c0", "c5"])],
    ),
    ("empty", [], 125, 8, []),
]


@pytest.mark.parametrize(
    ("case", "points", "max_registers", "max_gap", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_plan(
    case: str,
    points: list[Point],
    max_registers: int,
    max_gap: int,
    expected: list[tuple[str, int, int, list[str]]],
) -> None:
    blocks = plan_reads(points, max_registers, max_gap)
    got = [(b.table.value, b.address, b.count, [p.name for p in b.points]) for b in blocks]
    assert got == expected


def test_every_point_is_read_exactly_once_and_fits() -> None:
    points = [pt(f"p{i}", i * 3, "uint32") for i in range(100)]
    blocks = plan_reads(points, 50, 1)
    names = [p.name for b in blocks for p in b.points]
    assert sorted(names) == sorted(p.name for p in points)
    for block in blocks:
        assert block.count <= 50
        for p in block.points:
            assert block.address <= p.address and p.end <= block.address + block.count


def test_slice_gives_each_point_its_registers() -> None:
    a, b = pt("a", 10, "uint32"), pt("b", 14)
    (block,) = plan_reads([a, b], 125, 8)
    data = [1, 2, 3, 4, 5]
    assert block.slice(a, data) == [1, 2]
    assert block.slice(b, data) == [5]
