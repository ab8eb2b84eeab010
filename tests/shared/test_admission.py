"""The admission rule (shared/admission.py) and its use at the edge of the API's live view
and the live KPI engine, as pure logic (the real-process test is
tests/system/test_unbounded_telemetry.py)."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import given
from hypothesis import strategies as st

from shopfloor.api.live import LiveView
from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.collector.sinks import WrittenBatch
from shopfloor.kpi.live import LiveKpi
from shopfloor.shared import topics
from shopfloor.shared.admission import Refusal, TimeAdmission, known_values
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from shopfloor.shared.schema import to_ms
from tests.harness.plants import example_data

DAY_MS = 86_400_000
NOW = dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)


def default_plant() -> Plant:
    data = example_data()
    data.pop("admission")  # the defaults
    return parse_plant(data)


def test_defaults_are_five_minutes_ahead_and_thirty_days_old() -> None:
    rule = TimeAdmission.of(default_plant())
    assert (rule.max_ahead_ms, rule.max_age_ms) == (300_000, 30 * DAY_MS)


@given(st.integers(-(2**62), 2**62), st.integers(0, 10**12), st.integers(1, 10**12),
       st.integers(-(10**13), 10**13))
def test_refused_exactly_outside_the_bounds(now: int, ahead: int, age: int, delta: int) -> None:
    rule = TimeAdmission(ahead, age)
    refused = rule.refuse(now + delta, now)
    if delta > ahead:
        assert refused is not None and refused.reason is Refusal.FUTURE
    elif delta < -age:
        assert refused is not None and refused.reason is Refusal.TOO_OLD
    else:
        assert refused is None
    if refused is not None:
        assert "admission.max_" in refused.detail


def test_known_values_drops_and_counts_unknown_keys_without_copying_good_ones() -> None:
    good = {"a": 1, "b": 2.0}
    same, dropped = known_values(good, frozenset({"a", "b", "c"}))
    assert same is good and dropped == 0
    kept, dropped = known_values({**good, "x": 1, "y": 2}, frozenset({"a", "b"}))
    assert kept == good and dropped == 2


def _sample(ts: dt.datetime, seq: int, **values: object) -> bytes:
    iso = ts.isoformat().replace("+00:00", "Z")
    return json.dumps({"v": 1, "ts": iso, "seq": seq, "values": values}).encode()


def test_live_view_is_not_frozen_by_a_future_sample_and_keeps_only_points() -> None:
    plant = default_plant()
    live = LiveView(plant, clock=NOW.timestamp)
    topic = topics.machine_topic(plant.site.id, "line1", "press1", topics.TELEMETRY)
    assert live.apply(topic, _sample(NOW, 1, speed_pct=50))
    live.apply(topic, _sample(NOW + dt.timedelta(days=365), 2, speed_pct=99))
    live.apply(topic, _sample(NOW - dt.timedelta(days=31), 3, speed_pct=1))
    junk = {f"k{i}": i for i in range(1000)}
    live.apply(topic, _sample(NOW + dt.timedelta(seconds=1), 4, speed_pct=60, **junk))
    snapshot = live.machine("press1")
    assert snapshot.values == {"speed_pct": 60} and snapshot.seq == 4
    assert live.refused == {Refusal.FUTURE: 1, Refusal.TOO_OLD: 1}
    assert live.unknown_values == 1000


def test_live_kpi_takes_no_sample_beyond_the_rule_and_no_unknown_key() -> None:
    plant = default_plant()
    engine = LiveKpi(plant)  # no store needed: samples_of is the engine's pure edge
    machine = plant.machines["press1"]

    def message(ts: dt.datetime, seq: int, **values: object) -> ParsedMessage:
        return ParsedMessage(Kind.TELEMETRY, plant.site.id, Telemetry(ts=ts, seq=seq,
                             values=values), line=machine.line, machine="press1")

    batch = WrittenBatch([message(NOW, 1, speed_pct=5),
                          message(NOW + dt.timedelta(days=3), 2, speed_pct=6),
                          message(NOW - dt.timedelta(days=40), 3, speed_pct=7),
                          message(NOW, 4, speed_pct=8, ghost=1, other=2)], NOW)
    samples = engine.samples_of(batch)
    assert [(m, s.seq, dict(s.values)) for m, s in samples] == [
        ("press1", 1, {"speed_pct": 5}), ("press1", 4, {"speed_pct": 8})]
    assert all(s.ts_ms == to_ms(NOW) for _, s in samples)
    assert (engine.refused, engine.unknown_values) == (2, 2)
    assert engine.watermark is None  # samples_of only filters; `add` moves the watermark


def test_a_state_beginning_in_the_future_is_refused_an_old_one_is_not() -> None:
    plant = default_plant()
    live = LiveView(plant, clock=NOW.timestamp)
    topic = topics.machine_topic(plant.site.id, "line1", "press1", topics.STATE)

    def state(since: dt.datetime, name: str) -> bytes:
        iso = since.isoformat().replace("+00:00", "Z")
        return json.dumps({"v": 1, "ts": iso, "since": iso, "state": name}).encode()

    assert live.apply(topic, state(NOW - dt.timedelta(days=90), "running"))  # long run
    assert not live.apply(topic, state(NOW + dt.timedelta(days=2), "stopped"))
    snapshot = live.machine("press1").state
    assert snapshot is not None and snapshot.state == "running"
    assert live.refused[Refusal.FUTURE] == 1
    rule = TimeAdmission.of(plant)
    assert rule.ahead(to_ms(NOW) - 10 * 365 * DAY_MS, to_ms(NOW)) is None
