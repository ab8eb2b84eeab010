"""Register decoding and encoding for every data type and byte order (table-driven), plus
round-trip properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopfloor.shared.enums import DataType
from shopfloor.shared.errors import CodecError
from shopfloor.shared.protocols.modbus import ModbusPoint as Point
from shopfloor.shared.protocols.modbus.codec import (
    decode,
    decode_raw,
    encode,
    encode_raw,
    register_count,
)
from shopfloor.shared.protocols.modbus.enums import ByteOrder, Table

A, B, C, D = ByteOrder.ABCD, ByteOrder.BADC, ByteOrder.CDAB, ByteOrder.DCBA

# (type, order, registers as they arrive from the device, expected raw value)
CASES = [
    (DataType.UINT16, A, [0x1234], 0x1234),
    (DataType.UINT16, B, [0x3412], 0x1234),
    (DataType.INT16, A, [0xFFFE], -2),
    (DataType.INT16, B, [0xFEFF], -2),
    (DataType.UINT32, A, [0x1234, 0x5678], 0x12345678),
    (DataType.UINT32, B, [0x3412, 0x7856], 0x12345678),
    (DataType.UINT32, C, [0x5678, 0x1234], 0x12345678),
    (DataType.UINT32, D, [0x7856, 0x3412], 0x12345678),
    (DataType.INT32, A, [0xFFFF, 0xFFFF], -1),
    (DataType.INT32, C, [0xFFFE, 0xFFFF], -2),
    (DataType.INT32, D, [0xFEFF, 0xFFFF], -2),
    (DataType.FLOAT32, A, [0x4049, 0x0FDB], 3.1415927410125732),
    (DataType.FLOAT32, B, [0x4940, 0xDB0F], 3.1415927410125732),
    (DataType.FLOAT32, C, [0x0FDB, 0x4049], 3.1415927410125732),
    (DataType.FLOAT32, D, [0xDB0F, 0x4940], 3.1415927410125732),
    (DataType.UINT64, A, [0x0102, 0x0304, 0x0506, 0x0708], 0x0102030405060708),
    (DataType.UINT64, B, [0x0201, 0x0403, 0x0605, 0x0807], 0x0102030405060708),
    (DataType.UINT64, C, [0x0708, 0x0506, 0x0304, 0x0102], 0x0102030405060708),
    (DataType.UINT64, D, [0x0807, 0x0605, 0x0403, 0x0201], 0x0102030405060708),
    (DataType.INT64, A, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFD], -3),
    (DataType.INT64, D, [0xFDFF, 0xFFFF, 0xFFFF, 0xFFFF], -3),
    (DataType.FLOAT64, A, [0x4005, 0xBF0A, 0x8B14, 0x5769], 2.718281828459045),
    (DataType.FLOAT64, C, [0x5769, 0x8B14, 0xBF0A, 0x4005], 2.718281828459045),
    (DataType.FLOAT64, B, [0x0540, 0x0ABF, 0x148B, 0x6957], 2.718281828459045),
    (DataType.FLOAT64, D, [0x6957, 0x148B, 0x0ABF, 0x0540], 2.718281828459045),
    (DataType.BOOL, A, [1], True),
    (DataType.BOOL, A, [0], False),
]


@pytest.mark.parametrize(("data_type", "order", "registers", "expected"), CASES)
def test_decode_every_type_and_order(
    data_type: DataType, order: ByteOrder, registers: list[int], expected: object
) -> None:
    assert decode_raw(data_type, registers, order) == expected


@pytest.mark.parametrize(("data_type", "order", "registers", "expected"), CASES)
def test_encode_is_the_inverse(
    data_type: DataType, order: ByteOrder, registers: list[int], expected: object
) -> None:
    assert encode_raw(data_type, expected, order) == registers  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("order", "registers"),
    [(A, [0x4142, 0x4344, 0x4500]), (C, [0x4142, 0x4344, 0x4500]),
     (B, [0x4241, 0x4443, 0x0045]), (D, [0x4241, 0x4443, 0x0045])],
)
def test_strings_swap_bytes_never_words(order: ByteOrder, registers: list[int]) -> None:
    assert decode_raw(DataType.STRING, registers, order) == "ABCDE"
    assert encode_raw(DataType.STRING, "ABCDE", order, length=6) == registers


def test_register_counts() -> None:
    assert [register_count(t) for t in (DataType.BOOL, DataType.INT16, DataType.UINT32,
                                         DataType.FLOAT64)] == [1, 1, 2, 4]
    assert register_count(DataType.STRING, 5) == 3
    with pytest.raises(CodecError):
        register_count(DataType.STRING)


def _point(**kw: object) -> Point:
    return Point.model_validate({"name": "p", "address": 0, **kw})


def test_scale_and_offset_apply_both_ways() -> None:
    point = _point(type="int32", scale=0.01, offset=-40, order="CDAB")
    registers = encode(point, 21.5)
    assert decode(point, registers) == pytest.approx(21.5)
    assert decode_raw(DataType.INT32, registers, C) == 6150


def test_unscaled_integers_stay_integers() -> None:
    assert decode(_point(type="uint16"), [7]) == 7
    assert isinstance(decode(_point(type="uint16"), [7]), int)


def test_non_finite_float_is_an_error() -> None:
    nan = encode_raw(DataType.FLOAT32, math.nan)
    with pytest.raises(CodecError):
        decode(_point(type="float32"), nan)


def test_value_out_of_type_range_is_refused() -> None:
    with pytest.raises(CodecError):
        encode(_point(type="uint16"), 70000)
    with pytest.raises(CodecError):
        encode(_point(type="int16"), -40000)
    with pytest.raises(CodecError):
        encode(_point(type="uint16"), "seven")


def test_wrong_register_count_is_an_error() -> None:
    with pytest.raises(CodecError):
        decode_raw(DataType.UINT32, [1])


def test_bits_tables_carry_bools() -> None:
    point = _point(table=Table.COIL, type="bool")
    assert encode(point, True) == [1]
    assert decode(point, [0]) is False


_INT_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


@st.composite
def _typed_ints(draw: st.DrawFn) -> tuple[DataType, int]:
    data_type = draw(st.sampled_from(sorted(_INT_RANGES)))
    low, high = _INT_RANGES[data_type]
    return data_type, draw(st.integers(low, high))


@given(_typed_ints(), st.sampled_from(list(ByteOrder)))
def test_integer_round_trip(typed: tuple[DataType, int], order: ByteOrder) -> None:
    data_type, value = typed
    registers = encode_raw(data_type, value, order)
    assert len(registers) == register_count(data_type)
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode_raw(data_type, registers, order) == value


@given(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(list(ByteOrder)))
def test_float64_round_trip(value: float, order: ByteOrder) -> None:
    assert decode_raw(DataType.FLOAT64, encode_raw(DataType.FLOAT64, value, order), order) == value
