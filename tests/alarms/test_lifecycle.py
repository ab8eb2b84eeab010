"""The ISA-18.2 lifecycle as a state machine: the documented paths, the actions each state
refuses, and (hypothesis) any sequence of events keeps the state consistent with the
condition and every change audited."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shopfloor.alarms.errors import LifecycleError
from shopfloor.alarms.lifecycle import (
    SUPPRESSED,
    Alarm,
    AlarmState,
    Event,
    EventKind,
    apply,
    expire,
)

S = AlarmState


def _run(*events: Event) -> tuple[Alarm, list[tuple[S, S]]]:
    alarm, seen = Alarm(), []
    for event in events:
        alarm, transition = apply(alarm, event)
        if transition:
            seen.append((transition.from_state, transition.to_state))
    return alarm, seen


def test_ack_then_clear_returns_to_normal() -> None:
    alarm, seen = _run(Event(EventKind.RAISE, 1), Event(EventKind.ACK, 2, "ann", "seen"),
                       Event(EventKind.CLEAR, 3))
    assert seen == [(S.NORMAL, S.ACTIVE_UNACK), (S.ACTIVE_UNACK, S.ACTIVE_ACK),
                    (S.ACTIVE_ACK, S.NORMAL)]
    assert alarm == Alarm(S.NORMAL, condition=False, changed_at=3)


def test_clear_then_ack_returns_to_normal() -> None:
    _, seen = _run(Event(EventKind.RAISE, 1), Event(EventKind.CLEAR, 2),
                   Event(EventKind.ACK, 3, "ann"))
    assert seen == [(S.NORMAL, S.ACTIVE_UNACK), (S.ACTIVE_UNACK, S.CLEARED_UNACK),
                    (S.CLEARED_UNACK, S.NORMAL)]


def test_the_audit_record_says_who_when_and_why() -> None:
    alarm, _ = apply(Alarm(), Event(EventKind.RAISE, 1))
    _, transition = apply(alarm, Event(EventKind.ACK, 7, "ann", "fixing the jam"))
    assert transition is not None
    assert (transition.kind, transition.at, transition.by, transition.comment) == \
        (EventKind.ACK, 7, "ann", "fixing the jam")


def test_ack_with_nothing_to_ack_is_refused() -> None:
    with pytest.raises(LifecycleError, match="nothing to acknowledge"):
        apply(Alarm(), Event(EventKind.ACK, 1, "ann"))


def test_shelve_needs_a_reason_and_an_end() -> None:
    with pytest.raises(LifecycleError, match="reason"):
        apply(Alarm(), Event(EventKind.SHELVE, 1, "sue", "  ", until=100))
    with pytest.raises(LifecycleError, match="end"):
        apply(Alarm(), Event(EventKind.SHELVE, 1, "sue", "noisy sensor", until=1))


def test_a_shelve_expires_at_its_end_into_the_condition_state() -> None:
    alarm, _ = _run(Event(EventKind.SHELVE, 1, "sue", "noisy", until=100),
                    Event(EventKind.RAISE, 50))
    assert alarm.state is S.SHELVED and alarm.condition
    assert expire(alarm, 99) == (alarm, None)
    after, transition = expire(alarm, 150)
    assert after.state is S.ACTIVE_UNACK and after.shelved_until is None
    assert transition is not None and transition.at == 100 and transition.by == "system"


def test_out_of_service_hides_the_alarm_until_returned() -> None:
    alarm, _ = _run(Event(EventKind.REMOVE_FROM_SERVICE, 1, "max"),
                    Event(EventKind.RAISE, 2), Event(EventKind.CLEAR, 3),
                    Event(EventKind.RAISE, 4))
    assert alarm.state is S.OUT_OF_SERVICE
    with pytest.raises(LifecycleError):
        apply(alarm, Event(EventKind.SHELVE, 5, "sue", "x", until=50))
    alarm, _ = apply(alarm, Event(EventKind.RETURN_TO_SERVICE, 6, "max"))
    assert alarm.state is S.ACTIVE_UNACK


times = st.integers(0, 10_000)


class Lifecycle(RuleBasedStateMachine):
    """Any sequence of process and operator events."""

    def __init__(self) -> None:
        super().__init__()
        self.alarm = Alarm()
        self.now = 0

    def _apply(self, event: Event) -> None:
        before = self.alarm
        try:
            self.alarm, transition = apply(before, event)
        except LifecycleError:
            assert self.alarm == before
            return
        if transition is None:
            assert self.alarm == before
        else:
            assert (transition.from_state, transition.to_state) == (before.state,
                                                                    self.alarm.state)
            assert transition.at == event.at and transition.by == event.by

    @rule(gap=st.integers(0, 100))
    def process_raise(self, gap: int) -> None:
        self.now += gap
        self._apply(Event(EventKind.RAISE, self.now))

    @rule(gap=st.integers(0, 100))
    def process_clear(self, gap: int) -> None:
        self.now += gap
        was = self.alarm
        self._apply(Event(EventKind.CLEAR, self.now))
        if was.state is S.ACTIVE_UNACK:
            assert self.alarm.state is S.CLEARED_UNACK  # an unacked alarm is never lost

    @rule()
    def ack(self) -> None:
        was = self.alarm.state
        self._apply(Event(EventKind.ACK, self.now, "ann", "ok"))
        if was in (S.ACTIVE_UNACK, S.CLEARED_UNACK):
            assert self.alarm.state in (S.ACTIVE_ACK, S.NORMAL)
        else:
            assert self.alarm.state is was

    @rule(duration=st.integers(-5, 500), reason=st.sampled_from(["", "noisy"]))
    def shelve(self, duration: int, reason: str) -> None:
        self._apply(Event(EventKind.SHELVE, self.now, "sue", reason,
                          until=self.now + duration))

    @precondition(lambda self: self.alarm.state is S.SHELVED)
    @rule()
    def unshelve(self) -> None:
        self._apply(Event(EventKind.UNSHELVE, self.now, "sue"))
        assert self.alarm.state not in SUPPRESSED

    @rule(gap=st.integers(0, 600))
    def time_passes(self, gap: int) -> None:
        self.now += gap
        before = self.alarm
        self.alarm, transition = expire(self.alarm, self.now)
        if before.state is S.SHELVED and before.shelved_until is not None \
                and before.shelved_until <= self.now:
            assert transition is not None and transition.at == before.shelved_until
            assert self.alarm.state is not S.SHELVED
        else:
            assert transition is None

    @rule()
    def maintenance_on(self) -> None:
        self._apply(Event(EventKind.REMOVE_FROM_SERVICE, self.now, "max"))
        assert self.alarm.state is S.OUT_OF_SERVICE

    @rule()
    def maintenance_off(self) -> None:
        self._apply(Event(EventKind.RETURN_TO_SERVICE, self.now, "max"))
        assert self.alarm.state is not S.OUT_OF_SERVICE

    @invariant()
    def state_matches_condition(self) -> None:
        state, condition = self.alarm.state, self.alarm.condition
        if state in (S.ACTIVE_UNACK, S.ACTIVE_ACK):
            assert condition
        if state in (S.CLEARED_UNACK, S.NORMAL):
            assert not condition
        assert (self.alarm.shelved_until is not None) == (state is S.SHELVED)


TestLifecycle = Lifecycle.TestCase
