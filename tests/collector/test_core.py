"""Pure logic of the collector: field types, coercion, timestamps, line encoding, seq
accounting, message classification. No I/O."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopfloor.collector.encode import (
    INT64_MAX,
    INT64_MIN,
    Encoder,
    FieldKind,
    coerce,
    field_kind,
    to_ms,
)
from shopfloor.collector.messages import Kind, ParsedMessage, Reason, Rejected, Router, classify
from shopfloor.collector.sequence import Observation, SequenceTracker
from shopfloor.shared import topics
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.collector.helpers import telemetry
from tests.harness.plants import example_data


@pytest.fixture(scope="module")
def plant() -> Plant:
    return parse_plant(example_data(), "example")


def test_field_kinds_follow_point_types(plant):
    press = plant.machines["press1"]
    kinds = {p.name: field_kind(p) for p in press.points}
    assert kinds["temperature"] is FieldKind.FLOAT  # float32
    assert kinds["power"] is FieldKind.FLOAT  # int32 scaled by 0.01
    assert kinds["total_count"] is FieldKind.INT  # uint32 unscaled
    assert kinds["run"] is FieldKind.BOOL
    assert kinds["work_order"] is FieldKind.STRING


@given(st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False)))
def test_float_points_are_always_floats(value):
    out = coerce(FieldKind.FLOAT, value)
    assert isinstance(out, float) and out == value


@given(st.integers())
def test_integer_points_are_int64_or_refused(value):
    if INT64_MIN <= value <= INT64_MAX:
        assert coerce(FieldKind.INT, value) == value
        if abs(value) < 2**53:  # exactly representable as a float
            assert coerce(FieldKind.INT, float(value)) == value
    else:
        with pytest.raises(ValueError, match="int64"):
            coerce(FieldKind.INT, value)


@pytest.mark.parametrize(("kind", "value"), [
    (FieldKind.FLOAT, True), (FieldKind.FLOAT, "1.0"), (FieldKind.FLOAT, float("nan")),
    (FieldKind.INT, 1.5), (FieldKind.INT, True), (FieldKind.INT, "3"),
    (FieldKind.BOOL, 2), (FieldKind.BOOL, "true"), (FieldKind.STRING, 5),
])
def test_values_that_do_not_fit_their_point_are_refused(kind, value):
    with pytest.raises(ValueError):
        coerce(kind, value)


@given(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1),
                    timezones=st.just(dt.UTC)))
def test_to_ms_is_exact_floor(when):
    ms = to_ms(when)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert epoch + dt.timedelta(milliseconds=ms) <= when < epoch + dt.timedelta(milliseconds=ms + 1)


def test_telemetry_line_has_tags_seq_and_typed_fields(plant):
    sample = telemetry(plant, "press1", 4).model_copy(update={"quality": {"power": "bad"}})
    message = ParsedMessage(Kind.TELEMETRY, plant.site.id, sample, line="line1",
                            machine="press1")
    encoded = Encoder(plant).encode(message, 0.0)
    assert encoded.line is not None and not encoded.bad_points
    head, fields, ts = encoded.line.split(" ")
    assert head == f"telemetry,line=line1,machine=press1,site={plant.site.id}"
    assert int(ts) == to_ms(sample.ts)
    parsed = dict(f.split("=", 1) for f in fields.split(","))
    assert parsed["_seq"] == "4i" and "power" not in parsed
    assert parsed["total_count"].endswith("i") and parsed["temperature"][-1].isdigit()
    assert parsed["run"] in ("true", "false") and parsed["work_order"] == '"WO-4"'
    assert encoded.values == len(plant.machines["press1"].points) - 1


@given(st.lists(st.integers(0, 50), min_size=1, max_size=60))
def test_seq_accounting(seqs):
    """Every seq between the first and the highest is either received once (in order or
    late) or still missing; repeats are duplicates."""
    tracker = SequenceTracker(grace_s=10.0)
    late = duplicates = 0
    for seq in seqs:
        seen = tracker.observe("m", seq, now_s=0.0)
        late += seen.late
        duplicates += seen.duplicate
    first = seqs[0]
    received = {s for s in seqs if s >= first}
    assert tracker.last("m") == max(seqs)
    assert tracker.missing("m") == max(seqs) - first + 1 - len(received)
    assert duplicates == len(seqs) - len(received)
    assert tracker.expire(now_s=5.0) == {}
    lost = tracker.expire(now_s=10.0).get("m", 0)
    assert lost == max(seqs) - first + 1 - len(received) and tracker.missing("m") == 0


def test_out_of_order_fills_the_gap_instead_of_counting_a_loss():
    tracker = SequenceTracker(grace_s=30.0)
    tracker.observe("m", 1, 0.0)
    assert tracker.observe("m", 5, 0.0).opened == 3
    assert tracker.observe("m", 3, 1.0).late
    assert tracker.observe("m", 3, 1.0).duplicate
    assert tracker.missing("m") == 2
    assert tracker.observe("m", 2, 2.0).late and tracker.observe("m", 4, 2.0).late
    assert tracker.missing("m") == 0 and tracker.expire(100.0) == {}


def test_recovered_seq_means_no_false_loss_after_restart():
    tracker = SequenceTracker(grace_s=0.0)
    tracker.recover({"press1": 41})
    assert tracker.observe("press1", 42, 0.0) == Observation()
    assert tracker.observe("press1", 40, 0.0).duplicate
    assert tracker.observe("press1", 45, 0.0).opened == 2
    assert tracker.expire(0.0) == {"press1": 2}


def test_classify_routes_by_topic(plant):
    site = plant.site.id
    good = telemetry(plant, "press1", 1).to_json()
    press = topics.machine_topic(site, "line1", "press1", topics.TELEMETRY)
    assert isinstance(classify(plant, press, good), ParsedMessage)
    for ignored in (topics.machine_topic(site, "line1", "press1", topics.CMD),
                    topics.machine_topic(site, "line1", "press1", topics.KPI),
                    topics.dead_letter_topic(site, "edge")):
        assert classify(plant, ignored, b"junk") is None
    birth = json.dumps({"online": True, "agent": "edge1"}).encode()
    status = classify(plant, topics.status_topic(site, "edge1"), birth)
    assert isinstance(status, ParsedMessage) and status.kind is Kind.STATUS
    unknown = classify(plant, topics.status_topic(site, "edge9"), birth)
    assert isinstance(unknown, Rejected) and unknown.reason is Reason.UNKNOWN_AGENT
    other_site = classify(plant, topics.machine_topic("x", "line1", "press1", "telemetry"), good)
    assert isinstance(other_site, Rejected) and other_site.reason is Reason.UNKNOWN_SITE


EXAMPLE = parse_plant(example_data(), "example")


@given(st.one_of(st.text(max_size=80), st.from_regex(r"\Ashopfloor/v1/[a-z0-9/+#]{0,40}\Z")),
       st.binary(max_size=200))
def test_classify_never_raises(topic, payload):
    result = classify(EXAMPLE, topic.replace("/demo/", f"/{EXAMPLE.site.id}/"), payload)
    assert result is None or isinstance(result, ParsedMessage | Rejected)


def test_router_remembers_only_valid_routes(plant):
    router = Router(plant)
    good = topics.machine_topic(plant.site.id, "line1", "press1", topics.TELEMETRY)
    raw = telemetry(plant, "press1", 1).to_json()
    first, again = router.classify(good, raw), router.classify(good, raw)
    assert first == again == classify(plant, good, raw)
    for i in range(50):  # invented machines: refused, never remembered
        bad = topics.machine_topic(plant.site.id, "line1", f"ghost{i}", topics.TELEMETRY)
        assert isinstance(router.classify(bad, raw), Rejected)
    assert list(router._routes) == [good]  # noqa: SLF001
