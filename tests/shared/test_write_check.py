"""The write check is one rule (shared.control_rules.check_value) for the API, the edge
and every protocol; it agrees with the Modbus register codec it no longer calls, and the
rule "an integer point with scale 1 and offset 0 stays an integer" (Point.keeps_integer)
is the one the decoder, the collector and the write path all follow."""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shopfloor.collector.encode import FieldKind, field_kind
from shopfloor.shared.control_rules import check_value, exact_value
from shopfloor.shared.enums import DataType
from shopfloor.shared.errors import CodecError
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.protocols.modbus import ModbusPoint
from shopfloor.shared.protocols.modbus.codec import decode, encode
from shopfloor.shared.protocols.modbus.enums import Table
from shopfloor.sim.errors import Refused
from shopfloor.sim.registers import DeviceRegisters
from tests.harness.plants import example_data

NUMERIC = [t for t in DataType if t is not DataType.BOOL and not t.is_text]


@st.composite
def numeric_points(draw: st.DrawFn) -> ModbusPoint:
    scaled = draw(st.booleans())
    return ModbusPoint(
        name="p", address=0, writable=True, type=draw(st.sampled_from(NUMERIC)),
        scale=draw(st.sampled_from([0.001, 0.1, 2.0, -0.5, 1e-30])) if scaled else 1.0,
        offset=draw(st.sampled_from([0.0, -40.0, 1e6])) if scaled else 0.0,
    )


values = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**63) - 1, 65535.4, 65535.6, 3.5e38]),
)


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(numeric_points(), values)
@example(ModbusPoint(name="p", address=0, writable=True, type="uint16"), 65536)
@example(ModbusPoint(name="p", address=0, writable=True, type="float32"), 3.5e38)
def test_the_neutral_range_check_agrees_with_the_modbus_codec(point: ModbusPoint,
                                                              value: float) -> None:
    refusal = check_value(point, value)
    try:
        registers = encode(point, value)
    except CodecError:
        assert refusal is not None, "what the codec cannot encode is refused"
        return
    if refusal is None:
        decoded = decode(point, registers)  # accepted: it encodes and decodes finite
        assert math.isfinite(decoded)  # type: ignore[arg-type]
        if point.keeps_integer:
            assert decoded == exact_value(point, value) and type(decoded) is int
    else:  # refused though it encodes: only a non-integer for an integer point, or a
        # raw value that overflows float64 after scaling (the codec would write inf)
        assert refusal.code in ("wrong_type", "out_of_range"), refusal
        raw = (value - point.offset) / point.scale
        assert (point.keeps_integer and value != int(value)) or not math.isfinite(raw)


@given(numeric_points())
@settings(max_examples=200, derandomize=True)
def test_one_rule_says_which_points_stay_integers(point: ModbusPoint) -> None:
    kind = field_kind(point)
    assert (kind is FieldKind.INT) is point.keeps_integer
    decoded = decode(point, [0] * point.count)
    assert isinstance(decoded, int) is point.keeps_integer


def test_a_simulated_device_refuses_a_write_outside_limits_as_the_api_does() -> None:
    plant = parse_plant(example_data())
    machine = plant.machines["press1"]
    speed = next(p for p in machine.points if p.name == machine.control.speed)
    assert isinstance(speed, ModbusPoint) and speed.max is not None
    too_fast = int(speed.max) + 1
    refusal = check_value(speed, too_fast)
    assert refusal is not None
    registers = DeviceRegisters(machine)
    try:
        registers.prepare(Table.HOLDING, speed.address, encode(speed, too_fast))
    except Refused as exc:
        assert refusal.message in str(exc)
    else:
        raise AssertionError("the device took a value above max")
