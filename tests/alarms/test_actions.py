"""People's actions on alarms, the alarm component's half (shopfloor.alarms.actions), and
maintenance mode from the machine state: each command applied at most once per id, also
across a restart restored from the retained payloads; refusals say why."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.alarms.actions import Actions
from shopfloor.alarms.engine import Engine, Record, payload_of
from shopfloor.shared.alarm_rules import RuleKind
from shopfloor.shared.contract import (
    AlarmAction,
    AlarmCommand,
    AlarmPayload,
    CommandStatus,
    StatePayload,
)
from shopfloor.shared.enums import AlarmState, EventKind, MachineState
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant, Role
from tests.harness.plants import example_data

T0 = 1_800_000_000.0
STOPPED = RuleKind.MACHINE_STOPPED


def _plant() -> Plant:
    data = example_data()
    data["alarms"] = {"defaults": {"machine_stopped": {"after_s": 60, "clear_after_s": 10},
                                   "agent_offline": {"enabled": False}}}
    return parse_plant(data, "<test>")


def _ts(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, dt.UTC)


def _state(state: MachineState, since: float, reason: str | None = None) -> StatePayload:
    return StatePayload(ts=_ts(since), state=state, since=_ts(since), reason=reason)


def _command(action: AlarmAction, at: float, *, id_: str = "c1", role: Role = Role.SUPERVISOR,
             machine: str = "press1", rule: RuleKind = STOPPED, shelve_s: float | None = None,
             comment: str = "on it") -> AlarmCommand:
    return AlarmCommand(id=id_, action=action, machine=machine, rule=rule, comment=comment,
                        shelve_s=shelve_s, requested_by="ann", role=role,
                        expires_at=_ts(at + 5))


def _raised(engine: Engine, machine: str = "press1") -> None:
    engine.on_state(machine, _state(MachineState.STOPPED, T0))
    assert engine.tick(T0 + 61)


def test_an_ack_applies_once_per_id_and_is_audited_with_who() -> None:
    engine = Engine(_plant(), T0)
    actions = Actions(engine)
    _raised(engine)
    result, record = actions.handle(_command(AlarmAction.ACK, T0 + 70, role=Role.OPERATOR),
                                    T0 + 70)
    assert result.status is CommandStatus.DONE and record is not None
    assert (record.transition.kind, record.transition.by, record.transition.comment,
            record.transition.command_id) == (EventKind.ACK, "ann", "on it", "c1")
    assert result.alarm is not None and result.alarm.state is AlarmState.ACTIVE_ACK
    assert result.alarm.last is not None and result.alarm.last.command_id == "c1"
    again, repeated = actions.handle(_command(AlarmAction.ACK, T0 + 70), T0 + 71)
    assert again == result and repeated is None  # a redelivery changes nothing
    other, none = actions.handle(_command(AlarmAction.ACK, T0 + 72, id_="c2"), T0 + 72)
    assert other.status is CommandStatus.REJECTED and none is None
    assert "nothing to acknowledge" in other.detail


def test_refusals_name_their_reason() -> None:
    engine = Engine(_plant(), T0)
    actions = Actions(engine)
    _raised(engine)
    cases = [
        (_command(AlarmAction.ACK, T0, id_="old"), CommandStatus.EXPIRED, "expired"),
        (_command(AlarmAction.SHELVE, T0 + 70, id_="op", role=Role.OPERATOR, shelve_s=60),
         CommandStatus.REJECTED, "needs the shelve permission"),
        (_command(AlarmAction.ACK, T0 + 70, id_="view", role=Role.VIEWER),
         CommandStatus.REJECTED, "needs the acknowledge permission"),
        (_command(AlarmAction.ACK, T0 + 70, id_="off", rule=RuleKind.AGENT_OFFLINE),
         CommandStatus.REJECTED, "rule off or unknown"),
        (_command(AlarmAction.ACK, T0 + 70, id_="nomach", machine="nope"),
         CommandStatus.REJECTED, "rule off or unknown"),
        (_command(AlarmAction.SHELVE, T0 + 70, id_="forever"), CommandStatus.REJECTED,
         "needs an end"),
        (_command(AlarmAction.SHELVE, T0 + 70, id_="why", shelve_s=60, comment=" "),
         CommandStatus.REJECTED, "needs a reason"),
        (_command(AlarmAction.UNSHELVE, T0 + 70, id_="un"), CommandStatus.REJECTED,
         "not shelved"),
    ]
    for command, status, detail in cases:
        result, record = actions.handle(command, T0 + 70)
        assert (result.status, record) == (status, None), command
        assert detail in result.detail, (command, result.detail)
    state = engine.instances["press1", STOPPED].alarm.state
    assert state is AlarmState.ACTIVE_UNACK  # none of them changed the alarm


def test_a_shelve_ends_by_itself_or_by_unshelve() -> None:
    engine = Engine(_plant(), T0)
    actions = Actions(engine)
    _raised(engine)
    _raised(engine, "weld1")
    shelved, _ = actions.handle(_command(AlarmAction.SHELVE, T0 + 70, shelve_s=30,
                                         comment="sensor swap"), T0 + 70)
    assert shelved.alarm is not None and shelved.alarm.shelved_until == _ts(T0 + 100)
    expired = engine.tick(T0 + 101)
    assert [(r.transition.kind, r.transition.at, r.transition.to_state) for r in expired] == [
        (EventKind.UNSHELVE, T0 + 100, AlarmState.ACTIVE_UNACK)]
    actions.handle(_command(AlarmAction.SHELVE, T0 + 70, id_="w", machine="weld1",
                            shelve_s=3600, comment="x"), T0 + 70)
    result, record = actions.handle(_command(AlarmAction.UNSHELVE, T0 + 80, id_="u",
                                             machine="weld1", comment=""), T0 + 80)
    assert result.status is CommandStatus.DONE and record is not None
    assert record.transition.to_state is AlarmState.ACTIVE_UNACK


def test_maintenance_takes_the_machines_alarms_out_of_service_and_back() -> None:
    engine = Engine(_plant(), T0)
    _raised(engine)
    into = engine.on_state("press1", _state(MachineState.PLANNED_STOP, T0 + 100,
                                            "maintenance"))
    assert [(r.transition.kind, r.transition.at, r.transition.to_state) for r in into] == [
        (EventKind.REMOVE_FROM_SERVICE, T0 + 100, AlarmState.OUT_OF_SERVICE)]
    assert engine.on_state("press1", _state(MachineState.PLANNED_STOP, T0 + 100,
                                            "maintenance")) == []  # the same state again
    assert [r.transition.kind for r in engine.tick(T0 + 120)] == [EventKind.CLEAR]
    back = engine.on_state("press1", _state(MachineState.RUNNING, T0 + 200))
    assert [(r.transition.kind, r.transition.to_state) for r in back] == [
        (EventKind.RETURN_TO_SERVICE, AlarmState.NORMAL)]
    planned = engine.on_state("press1", _state(MachineState.PLANNED_STOP, T0 + 300, "break"))
    assert planned == []  # a planned stop for another reason is no maintenance


ACTIONS = [AlarmAction.ACK, AlarmAction.SHELVE, AlarmAction.UNSHELVE]
steps = st.lists(st.tuples(
    st.integers(1, 200),
    st.sampled_from([MachineState.STOPPED, MachineState.RUNNING, MachineState.PLANNED_STOP,
                     *ACTIONS]),
    st.booleans()), min_size=1, max_size=25)


def _seen(records: list[Record]) -> list[tuple[str, EventKind, float, str, str | None]]:
    return [(r.instance.rule.kind, r.transition.kind, r.transition.at, r.transition.by,
             r.transition.command_id) for r in records]


class Run:
    """An engine and its actions, restartable from its retained payloads."""

    def __init__(self, plant: Plant, now: float) -> None:
        self.engine = Engine(plant, now)
        self.actions = Actions(self.engine)

    def restarted(self, plant: Plant, now: float) -> Run:
        retained = [payload_of(self.engine.site, inst, None, now).to_json()
                    for inst in self.engine.instances.values()]
        fresh = Run(plant, now)
        for raw in retained:
            payload = AlarmPayload.model_validate_json(raw)
            fresh.engine.restore(payload)
            fresh.actions.remember(payload)
        return fresh

    def step(self, what: MachineState | AlarmAction, i: int, now: float) -> list[Record]:
        if isinstance(what, AlarmAction):
            return self.act(_command(what, now, id_=f"c{i}", shelve_s=50, comment="why"), now)
        reason = "maintenance" if what is MachineState.PLANNED_STOP else None
        return self.engine.on_state("press1", _state(what, now, reason))

    def act(self, command: AlarmCommand, now: float) -> list[Record]:
        _, record = self.actions.handle(command, now)
        return [] if record is None else [record]


@settings(max_examples=80, deadline=None, derandomize=True)
@given(steps, st.integers(0, 25))
def test_a_restart_anywhere_neither_loses_nor_repeats_an_action(
        script: list[tuple[int, MachineState | AlarmAction, bool]], restart_at: int) -> None:
    """States (maintenance included), acks, shelves and unshelves at any moments, the
    component restarted before step `restart_at`, restored from its retained payloads,
    handed the retained machine state again and the last command again (a redelivery):
    the transitions are exactly those of a run without the restart."""
    restart_at %= len(script)
    plant = _plant()
    whole, parts = Run(plant, T0), Run(plant, T0)
    expected: list[Record] = []
    got: list[Record] = []
    now, last_state, last_command = T0, None, None
    for i, (gap, what, tick) in enumerate(script):
        if i == restart_at:
            parts = parts.restarted(plant, now)
            if last_state is not None:
                got += parts.engine.on_state("press1", last_state)
            if last_command is not None:
                got += parts.act(last_command, now)
        now += gap
        if tick:
            expected += whole.engine.tick(now)
            got += parts.engine.tick(now)
        expected += whole.step(what, i, now)
        got += parts.step(what, i, now)
        if isinstance(what, AlarmAction):
            last_command = _command(what, now, id_=f"c{i}", shelve_s=50, comment="why")
        else:
            reason = "maintenance" if what is MachineState.PLANNED_STOP else None
            last_state = _state(what, now, reason)
    expected += whole.engine.tick(now + 1000)
    got += parts.engine.tick(now + 1000)
    assert _seen(got) == _seen(expected)
