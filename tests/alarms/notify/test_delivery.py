"""Delivery to a real HTTP receiver: at least once through failures and an outage,
counted once per idempotency key, signed, in order; across a restart with notifications
still queued; a hanging receiver holds up nothing but its own deliveries; dead letters."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shopfloor.alarms.notify.queue import RowState
from shopfloor.alarms.notify.sender import retry_after_s
from tests.alarms.notify.conftest import T0, Component, running, stopped
from tests.alarms.notify.receiver import Receiver
from tests.collector.helpers import wait_for
from tests.harness.plants import write_plant

MACHINES = ("press1", "weld1", "paint1", "pack1")


def _transitions(component: Any) -> list[Any]:
    """Raise and clear of machine_stopped on every machine, notified as the service does."""
    records = []
    for i, machine in enumerate(MACHINES):
        records += stopped(component.engine, machine, T0 + i)
    for i, machine in enumerate(MACHINES):
        records += running(component.engine, machine, T0 + 600 + i)
    component.notifier.notify(records, time.time())
    return records


def _expected_keys(records: list[Any], site: str) -> set[str]:
    return {f"{site}:{r.instance.machine}:machine_stopped:{r.transition.kind}:"
            f"{round(r.transition.at * 1000)}" for r in records}


def _failed_attempts(component: Any) -> int:
    return int(component.notifier.senders["ops"].attempts_failed)


def test_failures_then_an_outage_then_each_transition_exactly_once(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    ops, _ = receivers
    ops.fail_next = 2
    component = component_factory()
    records = _transitions(component)
    wait_for(lambda: _failed_attempts(component) >= 2, 30)
    ops.down()
    outage_starts = _failed_attempts(component)
    wait_for(lambda: _failed_attempts(component) >= outage_starts + 2, 30)  # refused
    ops.up()
    expected = _expected_keys(records, component.engine.site)
    assert len(expected) == 2 * len(MACHINES)
    wait_for(lambda: set(ops.accepted_keys()) == expected, 30)
    assert all(r.signed for r in ops.requests)
    assert ops.duplicates == 0
    accepted = [r for r in ops.requests if r.status == 200]
    assert [r.key for r in accepted] == [k for k in ops.accepted_keys()]  # one 2xx per key
    kinds = [(r.body["alarm"]["machine"], r.body["alarm"]["last"]["kind"]) for r in accepted]
    for machine in MACHINES:  # an instance's notifications in order: raise before clear
        assert kinds.index((machine, "raise")) < kinds.index((machine, "clear"))
    for key in expected:  # attempts of one notification, counted up across the outage
        attempts = [r.attempt for r in ops.requests if r.key == key]
        assert attempts == sorted(set(attempts)), (key, attempts)
    assert {r.event for r in accepted} == {"alarm.transition"}
    raised = ops.accepted[accepted[0].key]
    assert raised["alarm"]["state"] == "active_unack"
    assert raised["alarm"]["severity"] == "medium"


def test_one_in_flight_keeps_the_whole_stream_in_order(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    ops, _ = receivers
    ops.fail_next = 2
    component = component_factory(ops_settings={"max_in_flight": 1})
    records = _transitions(component)
    expected = _expected_keys(records, component.engine.site)
    wait_for(lambda: set(ops.accepted_keys()) == expected, 30)
    in_order = [f"{component.engine.site}:{r.instance.machine}:machine_stopped:"
                f"{r.transition.kind}:{round(r.transition.at * 1000)}" for r in records]
    assert ops.accepted_keys() == in_order
    first = [r for r in ops.requests if r.key == in_order[0]]
    assert [(r.attempt, r.status) for r in first] == [(1, 503), (2, 503), (3, 200)]


def test_a_restart_with_notifications_queued_loses_and_repeats_nothing(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    ops, _ = receivers
    ops.down()
    first = component_factory()
    records = _transitions(first)
    wait_for(lambda: _failed_attempts(first) >= 1, 30)
    first.stop()
    second = component_factory()
    second.notifier.notify(records, time.time())  # the same transitions computed again
    ops.up()
    expected = _expected_keys(records, second.engine.site)
    wait_for(lambda: set(ops.accepted_keys()) == expected, 30)
    second.notifier.notify(records, time.time())  # ... and again after delivery
    wait_for(lambda: second.notifier.status.summary()["ops"]["pending"] == 0, 30)
    assert ops.duplicates == 0
    assert sorted(r.key for r in ops.requests if r.status == 200) == sorted(expected)


def test_a_hanging_receiver_blocks_neither_the_alarm_loop_nor_other_targets(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    ops, lead = receivers
    ops.hold.set()
    component = component_factory()
    records = stopped(component.engine, "press1", T0)
    component.notifier.notify(records, time.time())
    wait_for(lambda: _failed_attempts(component) >= 1, 30)  # timed out (timeout_s 1)
    # while the receiver hangs, the loop queues more, and another target is served
    more = stopped(component.engine, "weld1", T0 + 5)
    component.notifier.notify(more, time.time())
    component.notifier.tick(T0 + 5 + 61 + 300)  # weld1's escalation to lead, due
    wait_for(lambda: len(lead.accepted_keys("alarm.escalation")) == 2, 30)
    ops.hold.clear()
    ops.release.set()
    expected = _expected_keys(records + more, component.engine.site)
    wait_for(lambda: set(ops.accepted_keys()) == expected, 30)


def test_a_trickling_answer_is_cut_at_the_attempts_bound(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    ops, _ = receivers
    ops.trickle = True  # bytes keep coming: no per-read timeout would ever fire
    component = component_factory()
    records = stopped(component.engine, "press1", T0)
    component.notifier.notify(records, time.time())
    wait_for(lambda: _failed_attempts(component) >= 2, 30)
    assert component.notifier.senders["ops"].last_error == "no answer within 1.0 s"
    ops.trickle = False
    wait_for(lambda: set(ops.accepted_keys()) == _expected_keys(records,
                                                                component.engine.site), 30)


def test_an_answer_that_is_not_http_is_a_failed_attempt_and_nothing_breaks(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    ops, _ = receivers
    ops.garbage = True
    component = component_factory()
    records = stopped(component.engine, "press1", T0)
    component.notifier.notify(records, time.time())
    wait_for(lambda: _failed_attempts(component) >= 2, 30)
    assert "RemoteProtocolError" in component.notifier.senders["ops"].last_error
    ops.garbage = False
    wait_for(lambda: set(ops.accepted_keys()) == _expected_keys(records,
                                                                component.engine.site), 30)


def test_the_queue_of_a_webhook_removed_from_the_plant_file_is_kept_and_reported(
        component_factory: Any, receivers: tuple[Receiver, Receiver],
        caplog: pytest.LogCaptureFixture) -> None:
    ops, _ = receivers
    ops.down()
    first = component_factory()
    first.notifier.notify(stopped(first.engine, "press1", T0), time.time())
    first.stop()
    data = first.data
    data["notifications"]["webhooks"] = data["notifications"]["webhooks"][1:]  # lead only
    second = Component(data)
    try:
        assert "webhooks no longer in the plant file: ['ops'] (kept" in caplog.text
        assert second.notifier.queue.counts()["ops", RowState.PENDING] == 1
    finally:
        second.stop()


def test_a_receivers_retry_after_is_honoured_up_to_retry_max_s(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    ops, _ = receivers
    ops.fail_next, ops.retry_after = 1, "2"  # the backoff alone would wait <= 0.5 s
    component = component_factory(retry_max_s=5)
    component.notifier.notify(stopped(component.engine, "press1", T0), time.time())
    wait_for(lambda: ops.accepted_keys(), 30)
    first, second = ops.requests
    assert (first.status, second.status) == (503, 200)
    assert second.received_at - first.received_at >= 2.0


@pytest.mark.parametrize(("value", "seconds"), [
    (None, 0.0), ("", 0.0), ("7", 7.0), (" 12 ", 12.0), ("soon", 0.0), ("-3", 0.0),
    ("Thu, 03 Dec 2026 06:00:30 GMT", 30.0), ("Thu, 03 Dec 2026 05:59:00 GMT", 0.0),
])
def test_retry_after_in_seconds_or_as_a_date(value: str | None, seconds: float) -> None:
    now = dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC).timestamp()
    assert retry_after_s(value, now) == seconds


def test_undelivered_past_the_limit_becomes_a_counted_dead_letter(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    ops, _ = receivers
    ops.fail_next = 1_000_000
    component = component_factory(dead_letter_after_s=5, metrics_port=None)
    component.notifier.notify(stopped(component.engine, "press1", T0), time.time() - 10)
    summary = wait_for(lambda: (s := component.notifier.status.summary()["ops"])["dead"]
                       and s, 30)
    assert summary["pending"] == 0 and summary["last_error"] == "HTTP 503"
    assert summary["failing"] is True
    component.notifier.notify(stopped(component.engine, "weld1", T0), time.time())
    wait_for(lambda: _failed_attempts(component) >= 2, 30)
    counts = component.notifier.queue.counts()
    assert counts["ops", RowState.DEAD] == 1 and counts["ops", RowState.PENDING] == 1


def test_dead_letters_are_sent_again_on_request(
        component_factory: Any, receivers: tuple[Receiver, Receiver], tmp_path: Path) -> None:
    ops, _ = receivers
    ops.fail_next = 1_000_000
    component = component_factory(dead_letter_after_s=5)
    records = stopped(component.engine, "press1", T0)
    component.notifier.notify(records, time.time() - 10)
    wait_for(lambda: component.notifier.status.summary()["ops"]["dead"], 30)
    path = write_plant(component.data, tmp_path / "plant.yaml")
    shown = _shopfloor("alarm-webhooks", str(path))
    assert "ops: 0 pending, 0 delivered, 1 dead" in shown
    assert "dead: ops demo:press1:machine_stopped:raise:" in shown
    assert "after 1 attempt(s): HTTP 503" in shown
    ops.fail_next = 0  # the receiver is fixed
    assert "1 dead letter(s) queued again" in _shopfloor("alarm-webhooks", str(path),
                                                         "--retry-dead", "--webhook", "ops")
    wait_for(lambda: set(ops.accepted_keys()) == _expected_keys(records,
                                                                component.engine.site), 30)
    assert component.notifier.status.summary()["ops"]["dead"] == 0


def _shopfloor(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "shopfloor.cli", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_dead_letters_and_depth_on_the_metrics_endpoint(
        component_factory: Any, receivers: tuple[Receiver, Receiver]) -> None:
    from tests.harness.services import free_port
    ops, _ = receivers
    ops.fail_next = 1_000_000
    port = free_port()
    component = component_factory(dead_letter_after_s=5, metrics_port=port)
    component.notifier.notify(stopped(component.engine, "press1", T0), time.time() - 10)
    line = 'shopfloor_alarms_notifications{state="dead",target="ops"} 1.0'

    def metrics() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    wait_for(lambda: line in metrics(), 30)
    assert 'shopfloor_alarms_notifications{state="pending",target="lead"} 0.0' in metrics()
