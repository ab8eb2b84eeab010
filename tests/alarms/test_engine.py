"""The rule engine on contract payloads: machine_stopped and agent_offline raise and clear
on event time; a restart restored from the retained payloads repeats and loses nothing."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.alarms.engine import Engine, Record, payload_of
from shopfloor.alarms.lifecycle import Event
from shopfloor.shared.alarm_rules import RuleKind
from shopfloor.shared.contract import AgentStatus, AlarmPayload, StatePayload
from shopfloor.shared.enums import AlarmState, EventKind, MachineState
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.plants import example_data

T0 = 1_800_000_000.0


def _plant() -> Plant:
    data = example_data()
    data["alarms"] = {"defaults": {"machine_stopped": {"after_s": 60, "clear_after_s": 10},
                                   "agent_offline": {"after_s": 5, "clear_after_s": 0}}}
    return parse_plant(data, "<test>")


def _state(state: MachineState, since: float) -> StatePayload:
    at = dt.datetime.fromtimestamp(since, dt.UTC)
    return StatePayload(ts=at, state=state, since=at)


def _seen(records: list[Record]) -> list[tuple[str, str, EventKind, float]]:
    return [(r.instance.machine, r.instance.rule.kind, r.transition.kind, r.transition.at)
            for r in records]


def _online(online: bool, at: float) -> AgentStatus:
    return AgentStatus(online=online, agent="edge1", ts=dt.datetime.fromtimestamp(at, dt.UTC))


def test_a_machine_stopped_long_enough_raises_then_clears() -> None:
    engine = Engine(_plant(), T0)
    assert engine.on_state("press1", _state(MachineState.STOPPED, T0 + 1)) == []
    assert engine.tick(T0 + 30) == []
    raised = engine.tick(T0 + 70)
    assert ("press1", "machine_stopped", EventKind.RAISE, T0 + 61) in _seen(raised)
    assert engine.on_state("press1", _state(MachineState.RUNNING, T0 + 80)) == []
    cleared = engine.tick(T0 + 95)
    assert ("press1", "machine_stopped", EventKind.CLEAR, T0 + 90) in _seen(cleared)
    assert engine.instances["press1", RuleKind.MACHINE_STOPPED].alarm.state is \
        AlarmState.CLEARED_UNACK


def test_an_agent_offline_or_silent_raises_for_its_machines() -> None:
    engine = Engine(_plant(), T0)
    engine.on_status(_online(True, T0), T0)
    assert engine.tick(T0 + 10) == []
    engine.on_status(_online(False, T0 + 20), T0 + 20)
    raised = _seen(engine.tick(T0 + 25))
    plant = _plant()
    assert {m for m, kind, *_ in raised if kind == "agent_offline"} == \
        set(plant.agents[0].machines) and len(plant.agents) == 1
    assert _seen(engine.on_status(_online(True, T0 + 40), T0 + 40))[0][2] is EventKind.CLEAR
    silent = _seen(engine.tick(T0 + 40 + 30 + 5))  # status_period_s 10, 3 periods: silent
    assert ("press1", "agent_offline", EventKind.RAISE, T0 + 75) in silent


def test_a_restart_restored_from_retained_payloads_repeats_and_loses_nothing() -> None:
    plant = _plant()
    first = Engine(plant, T0)
    first.on_status(_online(True, T0), T0)
    first.on_state("press1", _state(MachineState.STOPPED, T0 + 1))
    first.tick(T0 + 70)
    first.act("press1", RuleKind.MACHINE_STOPPED, Event(EventKind.ACK, T0 + 75, "ann", "ok"))
    retained = [AlarmPayload.model_validate_json(payload_of(first.site, i, None, T0 + 76)
                                                 .to_json())
                for i in first.instances.values()]
    second = Engine(plant, T0 + 200)
    for payload in retained:
        second.restore(payload)
    second.on_status(_online(True, T0 + 200), T0 + 200)
    assert second.on_state("press1", _state(MachineState.STOPPED, T0 + 1)) == []  # seen
    assert second.tick(T0 + 201) == []
    assert second.instances["press1", RuleKind.MACHINE_STOPPED].alarm.state is \
        AlarmState.ACTIVE_ACK
    # the machine ran again while the engine was away: the clear has its own event time
    second.on_state("press1", _state(MachineState.RUNNING, T0 + 150))
    cleared = _seen(second.tick(T0 + 202))
    assert cleared == [("press1", "machine_stopped", EventKind.CLEAR, T0 + 160)]


steps = st.lists(st.tuples(st.integers(1, 200),
                           st.sampled_from([MachineState.STOPPED, MachineState.RUNNING,
                                            MachineState.IDLE, MachineState.SETUP]),
                           st.booleans()), min_size=1, max_size=25)


def _key(records: list[Record]) -> list[tuple[str, str, EventKind, float]]:
    return _seen(records)


@settings(max_examples=60, deadline=None)
@given(steps, st.integers(0, 25))
def test_a_restart_anywhere_gives_the_same_transitions(script: list[tuple[int, MachineState,
                                                                         bool]],
                                                       restart_at: int) -> None:
    """Machine states (each a change with its own `since`) and ticks at any moments, with
    the component restarted before step `restart_at` (restored from its retained payloads
    as they went over the wire, then handed the retained machine state again): the
    transitions are those of a run without the restart, none lost, none repeated."""
    restart_at %= len(script)
    plant = _plant()
    whole, now, last_state = Engine(plant, T0), T0, None
    expected: list[Record] = []
    parts = Engine(plant, T0)
    got: list[Record] = []
    for i, (gap, state, tick) in enumerate(script):
        if i == restart_at:
            retained = [payload_of(parts.site, inst, None, now).to_json()
                        for inst in parts.instances.values()]
            parts = Engine(plant, now)
            for raw in retained:
                parts.restore(AlarmPayload.model_validate_json(raw))
            if last_state is not None:
                got += parts.on_state("press1", last_state)
        now += gap
        payload = _state(state, now)
        if tick:
            expected += whole.tick(now)
            got += parts.tick(now)
        expected += whole.on_state("press1", payload)
        got += parts.on_state("press1", payload)
        last_state = payload
    expected += whole.tick(now + 1000)
    got += parts.tick(now + 1000)
    stopped = [r for r in expected if r.instance.rule.kind is RuleKind.MACHINE_STOPPED]
    assert _key([r for r in got if r.instance.rule.kind is RuleKind.MACHINE_STOPPED]) == \
        _key(stopped)
