"""The register image of a simulated device: layout, reads, and writes refused like a
PLC refuses them (read-only, unmapped, outside min/max), with nothing half-applied."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.shared.enums import DataType
from shopfloor.shared.plant import Machine
from shopfloor.shared.protocols.modbus import ModbusPoint as Point
from shopfloor.shared.protocols.modbus.codec import STRUCT_FORMAT, Value, decode, encode
from shopfloor.shared.protocols.modbus.enums import ByteOrder, Table
from shopfloor.sim.errors import Refused, SimError
from shopfloor.sim.faults import Fault, FaultMode, parse_assignment
from shopfloor.sim.registers import (
    ILLEGAL_ADDRESS,
    ILLEGAL_VALUE,
    DeviceRegisters,
    encode_clamped,
    registers_encoder,
)
from tests.sim.conftest import example_on_port

PRESS = example_on_port(5020).machines["press1"]


def point(name: str) -> Point:
    found = PRESS.point(name)
    assert found is not None
    return found


def test_every_point_round_trips_through_its_registers() -> None:
    regs = DeviceRegisters(PRESS)
    values: dict[str, Value] = {
        "temperature": 41.5,
        "power": -3.25,
        "energy": 123456.789,
        "work_order": "WO-42",
    }
    for name, value in values.items():
        regs.set(point(name), value)
    assert regs.get(point("temperature")) == pytest.approx(41.5)
    assert regs.get(point("power")) == pytest.approx(-3.25)
    assert regs.get(point("energy")) == pytest.approx(123456.789)
    assert regs.get(point("work_order")) == "WO-42"
    raw = regs.read(Table.HOLDING, 8, 2)
    assert raw == encode(point("temperature"), 41.5)  # CDAB word order, via the codec
    assert decode(point("temperature"), [int(r) for r in raw]) == pytest.approx(41.5)


def test_reads_cover_gaps_but_not_past_the_last_point() -> None:
    regs = DeviceRegisters(PRESS)
    assert len(regs.read(Table.HOLDING, 0, 22)) == 22
    with pytest.raises(Refused) as err:
        regs.read(Table.HOLDING, 20, 5)
    assert err.value.code == ILLEGAL_ADDRESS
    assert regs.read(Table.COIL, 0, 3) == [False, False, False]


def test_out_of_range_integers_are_clamped_not_crashing() -> None:
    regs = DeviceRegisters(PRESS)
    regs.set(point("state"), 70_000)
    assert regs.get(point("state")) == 65535
    regs.set(point("power"), float("nan"))
    assert regs.read(Table.HOLDING, 10, 2) == [0, 0]


@pytest.mark.parametrize(
    ("address", "values", "code"),
    [
        (6, [121], ILLEGAL_VALUE),  # speed_pct max 120
        (6, [9], ILLEGAL_VALUE),  # speed_pct min 10
        (5, [0, 50], ILLEGAL_VALUE),  # product 0 < min 1, speed fine: refused whole
        (0, [1], ILLEGAL_ADDRESS),  # state is read-only
        (7, [0], ILLEGAL_ADDRESS),  # alarm_code is read-only
        (21, [0, 0], ILLEGAL_ADDRESS),  # past the end
    ],
)
def test_refused_writes_change_nothing(address: int, values: list[int], code: int) -> None:
    regs = DeviceRegisters(PRESS)
    regs.set(point("product"), 2)
    regs.set(point("speed_pct"), 100)
    before = regs.read(Table.HOLDING, 0, 22)
    with pytest.raises(Refused) as err:
        regs.prepare(Table.HOLDING, address, values)
    assert err.value.code == code
    assert regs.read(Table.HOLDING, 0, 22) == before


def test_accepted_write_reports_each_touched_point() -> None:
    regs = DeviceRegisters(PRESS)
    changes = regs.prepare(Table.HOLDING, 5, [3, 80])
    assert [(p.name, v) for p, v in changes] == [("product", 3), ("speed_pct", 80)]
    regs.commit(Table.HOLDING, 5, [3, 80])
    assert regs.read(Table.HOLDING, 5, 2) == [3, 80]
    words = encode(point("work_order"), "AB")
    changes = regs.prepare(Table.HOLDING, 16, words[:1])  # part of a string point
    assert [(p.name, v) for p, v in changes] == [("work_order", "AB")]


def test_fault_modes_parse() -> None:
    assert parse_assignment("press1=silent") == ("press1", Fault(FaultMode.SILENT))
    assert parse_assignment(" weld1 = slow:0.25") == ("weld1", Fault(FaultMode.SLOW, 0.25))
    assert Fault.parse("EXCEPTION").mode is FaultMode.EXCEPTION
    for bad in ("press1", "=silent", "press1=loud", "press1=silent:2", "press1=slow:x"):
        with pytest.raises(SimError):
            parse_assignment(bad)


NUMBER_TYPES = [t for t in STRUCT_FORMAT]
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from(["12", None]),  # not numbers: written as zeros, like encode_clamped
)


@settings(max_examples=400, derandomize=True)
@given(
    data_type=st.sampled_from(NUMBER_TYPES),
    order=st.sampled_from(list(ByteOrder)),
    scale=st.sampled_from([1.0, 0.1, 2.5, -0.01]),
    offset=st.sampled_from([0.0, -40.0, 1000.5]),
    value=NUMBERS,
)
def test_the_compiled_encoder_writes_what_encode_clamped_writes(
    data_type: DataType, order: ByteOrder, scale: float, offset: float, value: Value
) -> None:
    """`DeviceRegisters.set` stores through `registers_encoder`: the same registers as
    the codec's `encode_clamped` for every numeric type, order, scale and offset, for
    values in and out of range, non-finite and not numbers."""
    target = Point(name="p", address=3, type=data_type, order=order, scale=scale,
                   offset=offset)
    expected = encode_clamped(target, value)
    assert registers_encoder(target)(value) == expected
    regs = DeviceRegisters(Machine.model_validate({**PRESS.model_dump(), "points": [
        target.model_dump()]}))
    regs.set(target, value)
    assert regs.read(Table.HOLDING, 3, target.count) == expected
