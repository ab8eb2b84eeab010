"""The ISA-18.2 lifecycle of one alarm instance, as a pure state machine.

normal -raise-> active_unack -ack-> active_ack -clear-> normal, and
active_unack -clear-> cleared_unack -ack-> normal (-raise-> active_unack again).
Shelving (for a duration, with a reason) and out-of-service (maintenance) suppress the
alarm: the condition is still tracked, and when the suppression ends the alarm is
active_unack if its condition is present, else normal. Every applied event returns a
`Transition` for the audit trail (who, when, from, to, comment).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from shopfloor.alarms.errors import LifecycleError
from shopfloor.shared.enums import AlarmState, EventKind

SYSTEM = "system"
"""`by` of the transitions the rule engine makes (raise, clear, auto-unshelve)."""

UNACKED = frozenset({AlarmState.ACTIVE_UNACK, AlarmState.CLEARED_UNACK})
SUPPRESSED = frozenset({AlarmState.SHELVED, AlarmState.OUT_OF_SERVICE})


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm instance (machine x rule). `condition`: the rule's condition is raised
    (tracked under suppression too); `shelved_until`: event time, s (SHELVED only)."""

    state: AlarmState = AlarmState.NORMAL
    condition: bool = False
    shelved_until: float | None = None
    changed_at: float = 0.0
    command_id: str | None = None
    """The id of the last person's action applied (kept across later engine transitions,
    so that a restarted component still knows it: at most once)."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    at: float
    by: str = SYSTEM
    comment: str = ""
    until: float | None = None
    """SHELVE only: when the shelve ends by itself (event time, s)."""
    command_id: str | None = None
    """A person's action: the id of the command that carried it (audit, at most once)."""


@dataclass(frozen=True, slots=True)
class Transition:
    kind: EventKind
    at: float
    by: str
    from_state: AlarmState
    to_state: AlarmState
    comment: str = ""
    command_id: str | None = None


def apply(alarm: Alarm, event: Event) -> tuple[Alarm, Transition | None]:
    """The alarm after `event`, and its audit record. A raise of an already raised (or
    a clear of a cleared) condition changes nothing and returns None; an operator's
    action that the state does not allow raises LifecycleError."""
    handler = _HANDLERS[event.kind]
    after = handler(alarm, event)
    if after is None:
        return alarm, None
    after = replace(after, changed_at=event.at,
                    command_id=event.command_id or alarm.command_id)
    return after, Transition(event.kind, event.at, event.by, alarm.state, after.state,
                             event.comment, event.command_id)


def expire(alarm: Alarm, now: float) -> tuple[Alarm, Transition | None]:
    """Auto-unshelve: a shelve whose `until` has passed ends at `until`."""
    if alarm.state is AlarmState.SHELVED and alarm.shelved_until is not None \
            and now >= alarm.shelved_until:
        return apply(alarm, Event(EventKind.UNSHELVE, alarm.shelved_until,
                                  comment="shelve expired"))
    return alarm, None


def _resumed(alarm: Alarm) -> Alarm:
    state = AlarmState.ACTIVE_UNACK if alarm.condition else AlarmState.NORMAL
    return replace(alarm, state=state, shelved_until=None)


def _raise(alarm: Alarm, event: Event) -> Alarm | None:
    if alarm.condition:
        return None
    if alarm.state in SUPPRESSED:
        return replace(alarm, condition=True)
    return replace(alarm, condition=True, state=AlarmState.ACTIVE_UNACK)


def _clear(alarm: Alarm, event: Event) -> Alarm | None:
    if not alarm.condition:
        return None
    if alarm.state in SUPPRESSED:
        return replace(alarm, condition=False)
    state = (AlarmState.NORMAL if alarm.state is AlarmState.ACTIVE_ACK
             else AlarmState.CLEARED_UNACK)
    return replace(alarm, condition=False, state=state)


def _ack(alarm: Alarm, event: Event) -> Alarm:
    if alarm.state is AlarmState.ACTIVE_UNACK:
        return replace(alarm, state=AlarmState.ACTIVE_ACK)
    if alarm.state is AlarmState.CLEARED_UNACK:
        return replace(alarm, state=AlarmState.NORMAL)
    raise LifecycleError(f"nothing to acknowledge: the alarm is {alarm.state}")


def _shelve(alarm: Alarm, event: Event) -> Alarm:
    if alarm.state is AlarmState.OUT_OF_SERVICE:
        raise LifecycleError("the alarm is out of service; it cannot be shelved")
    if event.until is None or event.until <= event.at:
        raise LifecycleError("a shelve needs an end after its start")
    if not event.comment.strip():
        raise LifecycleError("a shelve needs a reason")
    return replace(alarm, state=AlarmState.SHELVED, shelved_until=event.until)


def _unshelve(alarm: Alarm, event: Event) -> Alarm:
    if alarm.state is not AlarmState.SHELVED:
        raise LifecycleError(f"the alarm is not shelved (it is {alarm.state})")
    return _resumed(alarm)


def _remove(alarm: Alarm, event: Event) -> Alarm | None:
    if alarm.state is AlarmState.OUT_OF_SERVICE:
        return None
    return replace(alarm, state=AlarmState.OUT_OF_SERVICE, shelved_until=None)


def _return(alarm: Alarm, event: Event) -> Alarm | None:
    if alarm.state is not AlarmState.OUT_OF_SERVICE:
        return None
    return _resumed(alarm)


_HANDLERS: dict[EventKind, Callable[[Alarm, Event], Alarm | None]] = {
    EventKind.RAISE: _raise,
    EventKind.CLEAR: _clear,
    EventKind.ACK: _ack,
    EventKind.SHELVE: _shelve,
    EventKind.UNSHELVE: _unshelve,
    EventKind.REMOVE_FROM_SERVICE: _remove,
    EventKind.RETURN_TO_SERVICE: _return,
}
