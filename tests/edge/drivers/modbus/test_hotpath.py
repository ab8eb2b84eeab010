"""The poll hot path is a faster spelling of the reference code, never a different
answer: a block decoded in one unpack equals `codec.decode` point by point for
every type, byte order, scale and gap (and short answers), and the hand-framed
telemetry payload is byte for byte the pydantic model's JSON."""

from __future__ import annotations

import datetime as dt
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.edge.drivers.modbus.plan import plan_reads
from shopfloor.edge.sample import telemetry_payload
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.enums import DataType
from shopfloor.shared.errors import CodecError
from shopfloor.shared.protocols.modbus import ModbusPoint as Point
from shopfloor.shared.protocols.modbus.codec import REGISTER_TYPES, Value, decode
from shopfloor.shared.protocols.modbus.enums import ByteOrder, Table

WORD_TYPES = [t for t in DataType if t in REGISTER_TYPES and t is not DataType.BOOL] + [
    DataType.BOOL]


@st.composite
def register_points(draw: st.DrawFn) -> list[Point]:
    points: list[Point] = []
    address = draw(st.integers(0, 20))
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(WORD_TYPES))
        length = draw(st.integers(1, 9)) if kind is DataType.STRING else None
        scaled = draw(st.booleans()) and kind not in (DataType.BOOL, DataType.STRING)
        point = Point(
            name=f"p{i}",
            table=draw(st.sampled_from([Table.HOLDING, Table.INPUT])),
            address=address,
            type=kind,
            length=length,
            order=draw(st.sampled_from(list(ByteOrder))),
            scale=draw(st.sampled_from([0.1, 2.0, -0.5])) if scaled else 1.0,
            offset=draw(st.sampled_from([0.0, 3.0])) if scaled else 0.0,
        )
        points.append(point)
        address = point.end + draw(st.integers(0, 10))
    return points


def reference(point: Point, registers: list[int]) -> tuple[str, Value | None]:
    """(name, value) by the codec, value None when the point is bad."""
    if len(registers) < point.count:
        return point.name, None
    try:
        return point.name, decode(point, registers)
    except CodecError:
        return point.name, None


def as_compared(values: dict[str, Value], bad: set[str]) -> dict[str, tuple[str, str] | None]:
    """Type and repr, so that 1 vs 1.0 vs True and -0.0 vs 0.0 count as different."""
    out: dict[str, tuple[str, str] | None] = {
        n: (type(v).__name__, repr(v)) for n, v in values.items()
    }
    out.update(dict.fromkeys(bad))
    return out


@settings(max_examples=300, deadline=None)
@given(points=register_points(), gap=st.integers(0, 12), data=st.data())
def test_register_block_decodes_as_the_codec_does(
    points: list[Point], gap: int, data: st.DataObject
) -> None:
    for block in plan_reads(points, max_registers=125, max_gap=gap):
        registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=block.count,
                                       max_size=block.count))
        short = data.draw(st.booleans())
        answered = data.draw(st.integers(0, block.count)) if short else block.count
        raw = struct.pack(f">{answered}H", *registers[:answered])
        expected: dict[str, Value] = {}
        expected_bad: set[str] = set()
        for point, start, end in block.spans:
            name, value = reference(point, registers[start:min(end, answered)])
            if value is None:
                expected_bad.add(name)
            else:
                expected[name] = value
        assert as_compared(*block.decoder.decode(raw)) == as_compared(expected, expected_bad)


def test_byte_orders_and_nan_by_example() -> None:
    f = Point(name="f", address=0, type="float32", order="CDAB")
    d = Point(name="d", address=2, type="uint32", order="DCBA")
    s = Point(name="s", address=5, type="string", length=3, order="BADC")
    n = Point(name="n", address=8, type="float32")
    (block,) = plan_reads([f, d, s, n])
    lo, hi = struct.unpack(">HH", struct.pack(">f", 21.5))
    raw = struct.pack(">9H", hi, lo, 0x0403, 0x0201, 0, 0x4241, 0x0043, 0x7FC0, 0)
    values, bad = block.decoder.decode(raw)
    assert values == {"f": 21.5, "d": 0x01020304, "s": "ABC"} and bad == {"n"}


@settings(max_examples=100, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 40), min_size=1, max_size=10, unique=True),
    answer=st.binary(min_size=0, max_size=6),
    table=st.sampled_from([Table.COIL, Table.DISCRETE_INPUT]),
)
def test_bit_block_decodes_as_the_codec_does(
    offsets: list[int], answer: bytes, table: Table
) -> None:
    """`answer`: the bytes a device sends for the block (bits packed LSB first; shorter
    than the block when it answers too little)."""
    points = [Point(name=f"b{o}", table=table, address=o, type="bool") for o in offsets]
    for block in plan_reads(points):
        bits = [answer[i // 8] >> (i % 8) & 1 for i in range(8 * len(answer))]
        expected: dict[str, Value] = {}
        expected_bad: set[str] = set()
        for point, start, end in block.spans:
            name, value = reference(point, bits[start:end])
            if value is None:
                expected_bad.add(name)
            else:
                expected[name] = value
        assert block.decoder.decode(answer) == (expected, expected_bad)


names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=20),
)
timestamps = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)
).map(lambda t: t.replace(tzinfo=dt.UTC))


@settings(max_examples=500, deadline=None)
@given(
    ts=timestamps,
    seq=st.integers(0, 2**63 - 1),
    sample=st.dictionaries(names, values, max_size=25),
    bad=st.sets(names, max_size=5),
    epoch=st.none() | st.integers(0, 2**63 - 1),
)
def test_payload_bytes_equal_the_models(
    ts: dt.datetime, seq: int, sample: dict[str, Value], bad: set[str], epoch: int | None
) -> None:
    model = Telemetry.model_construct(
        ts=ts, seq=seq, epoch=epoch, values=sample, quality={n: "bad" for n in sorted(bad)}
    )
    payload = telemetry_payload(ts, seq, sample, bad, epoch)
    assert payload == model.to_json()
    assert Telemetry.model_validate_json(payload).seq == seq


@settings(max_examples=200, deadline=None)
@given(ts=timestamps, shifts=st.lists(st.sampled_from(
    ["us", "second", "minute", "hour", "day", "month", "year"]), min_size=1, max_size=8))
def test_payload_time_text_follows_every_field_of_the_second(
    ts: dt.datetime, shifts: list[str]
) -> None:
    """The ISO text of a second is cached: a time differing from the last one in any
    single field (same second of another day, month or year too) gets its own text."""
    for shift in shifts:
        if shift == "us":
            ts = ts.replace(microsecond=(ts.microsecond + 1) % 1_000_000)
        elif shift in ("second", "minute", "hour"):
            ts += dt.timedelta(**{f"{shift}s": 1})
        elif shift == "day":
            ts += dt.timedelta(days=1)
        elif shift == "month":
            ts = ts.replace(month=ts.month % 12 + 1, day=min(ts.day, 28))
        else:
            ts = ts.replace(year=ts.year + 1, day=min(ts.day, 28))
        model = Telemetry.model_construct(ts=ts, seq=1, epoch=None, values={}, quality={})
        assert telemetry_payload(ts, 1, {}, set()) == model.to_json()


class ReferenceDeadband:
    """The deadband filter as first written (every value looked at), for comparison."""

    def __init__(self, bands: dict[str, float], heartbeat: int) -> None:
        self.bands, self.heartbeat = bands, heartbeat
        self.last: dict[str, float] = {}
        self.skipped: dict[str, int] = {}

    def apply(self, values: dict[str, Value]) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for name, value in values.items():
            band = self.bands.get(name)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if band is None or not numeric or self.keep(name, float(value), band):
                out[name] = value
        return out

    def keep(self, name: str, value: float, band: float) -> bool:
        last, skipped = self.last.get(name), self.skipped.get(name, 0)
        if last is None or abs(value - last) >= band or skipped + 1 >= self.heartbeat:
            self.last[name], self.skipped[name] = value, 0
            return True
        self.skipped[name] = skipped + 1
        return False


point_values = st.one_of(st.booleans(), st.integers(-5, 5), st.floats(-5, 5), st.just("x"))


@settings(max_examples=200, deadline=None)
@given(
    bands=st.dictionaries(st.sampled_from("abcde"), st.sampled_from([0.0, 0.5, 2.0])),
    polls=st.lists(st.dictionaries(st.sampled_from("abcdef"), point_values), max_size=30),
    forget=st.lists(st.sets(st.sampled_from("abcdef")), max_size=30),
)
def test_deadband_filter_equals_the_reference(
    bands: dict[str, float], polls: list[dict[str, Value]], forget: list[set[str]]
) -> None:
    from shopfloor.edge.sample import DeadbandFilter

    points = [Point(name=n, address=i, deadband=b) for i, (n, b) in enumerate(bands.items())]
    fast = DeadbandFilter(points, heartbeat_polls=4)
    reference = ReferenceDeadband({n: b for n, b in bands.items() if b > 0}, 4)
    for i, values in enumerate(polls):
        gone = forget[i] if i < len(forget) else set()
        fast.forget(gone)
        for name in gone:
            reference.last.pop(name, None)
        got = fast.apply(values)
        assert got == reference.apply(values)
        assert list(got) == [k for k in values if k in got]  # order kept
