"""Escalation: an alarm still unacknowledged `after_s` after it raised notifies the
second target once; an acknowledgement (the lifecycle state the component holds) stops
it; a waiting escalation survives a restart of the component."""

from __future__ import annotations

import time
from typing import Any

from shopfloor.alarms.engine import payload_of
from shopfloor.alarms.lifecycle import Event
from shopfloor.alarms.notify.queue import RowState
from shopfloor.shared.alarm_rules import RuleKind
from shopfloor.shared.contract import AlarmPayload
from shopfloor.shared.enums import EventKind
from tests.alarms.notify.conftest import T0, stopped
from tests.alarms.notify.receiver import Receiver
from tests.collector.helpers import wait_for

DUE = T0 + 60 + 300  # raise at T0 + 60 (on-delay), escalation after_s 300
"""(Event times go through datetimes: microseconds, so ticks stay a second off DUE.)"""


def _lead_rows(component: Any) -> int:
    counts = component.notifier.queue.counts()
    return sum(counts.get(("lead", state), 0) for state in RowState)


def _ack(component: Any, machine: str, at: float) -> list[Any]:
    record = component.engine.act(machine, RuleKind.MACHINE_STOPPED,
                                  Event(EventKind.ACK, at, "ann", "on it"))
    return [record]


def test_unacknowledged_escalates_once_acknowledged_does_not(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    _, lead = receivers
    component = component_factory()
    notifier, now = component.notifier, time.time()
    notifier.notify(stopped(component.engine, "press1", T0), now)
    notifier.notify(stopped(component.engine, "weld1", T0), now)
    notifier.notify(_ack(component, "weld1", T0 + 100), now)  # acked through the service
    notifier.notify(stopped(component.engine, "paint1", T0), now)
    _ack(component, "paint1", T0 + 100)  # acked in the engine only: the state decides
    notifier.tick(DUE - 1)
    assert _lead_rows(component) == 0  # not yet due
    notifier.tick(DUE + 1)
    notifier.tick(DUE + 3600)  # once per raise
    assert _lead_rows(component) == 1
    key = wait_for(lambda: lead.accepted_keys("alarm.escalation"), 30)
    body = lead.accepted[key[0]]
    assert body["alarm"]["machine"] == "press1" and body["alarm"]["state"] == "active_unack"
    assert body["escalation"]["after_s"] == 300
    assert all(r.signed for r in lead.requests)


def test_a_waiting_escalation_survives_a_restart(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    _, lead = receivers
    first = component_factory()
    first.notifier.notify(stopped(first.engine, "pack1", T0), time.time())
    instance = first.engine.instances["pack1", RuleKind.MACHINE_STOPPED]
    retained = AlarmPayload.model_validate_json(
        payload_of(first.engine.site, instance, None, time.time()).to_json())
    first.stop()
    second = component_factory()
    second.engine.restore(retained)  # as the service restores from the retained topic
    second.notifier.tick(DUE + 1)
    key = wait_for(lambda: lead.accepted_keys("alarm.escalation"), 30)
    assert lead.accepted[key[0]]["alarm"]["machine"] == "pack1"
