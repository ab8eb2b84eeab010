"""Pure logic of `state_duration` (collector/durations.py): which state a change ends,
repeats and older states, bounded reason tags, the line written. No I/O."""

from __future__ import annotations

import datetime as dt

import pytest

from shopfloor.collector.durations import (
    EndedState,
    OpenState,
    StateDurations,
    duration_line,
    known_reasons,
)
from shopfloor.collector.messages import ParsedMessage, classify
from shopfloor.shared import schema, topics
from shopfloor.shared.enums import MachineState
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.collector.helpers import T0, state
from tests.harness.plants import example_data

RUNNING, STOPPED, IDLE = MachineState.RUNNING, MachineState.STOPPED, MachineState.IDLE
T0_MS = int(T0.timestamp() * 1000)


@pytest.fixture(scope="module")
def plant() -> Plant:
    return parse_plant(example_data(), "example")


def durations() -> StateDurations:
    return StateDurations({"jam", "starved"})


def test_known_reasons_come_from_every_state_map(plant: Plant) -> None:
    reasons = known_reasons(plant)
    assert {"jam", "starved", "blocked", "motor_fault", "changeover", "maintenance",
            "unmapped_code"} <= reasons
    assert None not in reasons and "" not in reasons


def test_each_change_ends_the_previous_state_in_order() -> None:
    d = durations()
    assert d.end("press1", OpenState(T0_MS, RUNNING)) is None  # nothing before it
    assert d.end("press1", OpenState(T0_MS + 90_000, STOPPED, "jam")) == EndedState(
        T0_MS, RUNNING, "none", 90.0)
    assert d.end("press1", OpenState(T0_MS + 90_500, IDLE, "starved")) == EndedState(
        T0_MS + 90_000, STOPPED, "jam", 0.5)
    assert d.end("press1", OpenState(T0_MS + 100_500, RUNNING)) == EndedState(
        T0_MS + 90_500, IDLE, "starved", 10.0)


def test_machines_are_followed_separately() -> None:
    d = durations()
    d.end("press1", OpenState(T0_MS, STOPPED, "jam"))
    assert d.end("press2", OpenState(T0_MS + 5_000, RUNNING)) is None
    ended = d.end("press1", OpenState(T0_MS + 7_000, RUNNING))
    assert ended == EndedState(T0_MS, STOPPED, "jam", 7.0)


def test_a_repeat_or_an_older_since_writes_nothing_and_keeps_the_open_state() -> None:
    d = durations()
    d.end("press1", OpenState(T0_MS + 10_000, STOPPED, "jam"))
    assert d.end("press1", OpenState(T0_MS + 10_000, STOPPED, "jam")) is None  # retained
    assert d.end("press1", OpenState(T0_MS + 5_000, RUNNING)) is None  # older
    assert d.end("press1", OpenState(T0_MS + 20_000, RUNNING)) == EndedState(
        T0_MS + 10_000, STOPPED, "jam", 10.0)


@pytest.mark.parametrize(("reason", "tag"), [
    ("jam", "jam"), ("unheard_of", "other"), ("device_timeout", "device_timeout"),
    (None, "none"), ("", "none"),
])
def test_reason_tags_are_bounded_by_the_plant(reason: str | None, tag: str) -> None:
    d = durations()
    d.end("press1", OpenState(T0_MS, STOPPED, reason))
    ended = d.end("press1", OpenState(T0_MS + 1_000, RUNNING))
    assert ended is not None and ended.reason == tag


def test_recovered_state_is_ended_by_the_first_change() -> None:
    d = durations()
    d.recover({"press1": OpenState(T0_MS, STOPPED, "jam")})
    assert d.end("press1", OpenState(T0_MS, STOPPED, "jam")) is None  # retained re-send
    assert d.end("press1", OpenState(T0_MS + 60_000, RUNNING)) == EndedState(
        T0_MS, STOPPED, "jam", 60.0)


def test_line_has_bounded_tags_and_a_float_duration() -> None:
    text = duration_line("demo", "line1", "press1", EndedState(T0_MS, STOPPED, "jam", 42.0))
    assert text == (f"{schema.STATE_DURATION},line=line1,machine=press1,reason=jam,"
                    f"site=demo,state=stopped {schema.DURATION_FIELD}=42.0 {T0_MS}")


def test_observe_turns_state_messages_into_lines(plant: Plant) -> None:
    d = StateDurations(known_reasons(plant))
    topic = topics.machine_topic(plant.site.id, "line1", "press1", topics.STATE)
    lines = []
    for payload in (state(RUNNING, T0), state(STOPPED, T0 + dt.timedelta(seconds=30), "jam"),
                    state(STOPPED, T0 + dt.timedelta(seconds=30), "jam"),
                    state(RUNNING, T0 + dt.timedelta(seconds=45))):
        message = classify(plant, topic, payload.to_json())
        assert isinstance(message, ParsedMessage)
        lines.append(d.observe(message))
    assert lines == [
        None,
        duration_line(plant.site.id, "line1", "press1", EndedState(T0_MS, RUNNING, "none", 30.0)),
        None,
        duration_line(plant.site.id, "line1", "press1",
                      EndedState(T0_MS + 30_000, STOPPED, "jam", 15.0)),
    ]
