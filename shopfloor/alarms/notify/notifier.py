"""The alarm component's hook for notifications. `notify(records)` turns the engine's
transitions into queued webhook notifications (before they are published, so a crash
loses none) and starts or cancels escalations; `tick(now)` sends the escalations that
came due for alarms still unacknowledged in the engine's own lifecycle state. Delivery
runs in one `Sender` thread per target.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from shopfloor.alarms.engine import Instance, Record, payload_of
from shopfloor.alarms.errors import NotifyError
from shopfloor.alarms.lifecycle import UNACKED
from shopfloor.alarms.notify import message
from shopfloor.alarms.notify.queue import Notification, NotificationQueue, Pending, RowState
from shopfloor.alarms.notify.sender import Delivery, Sender
from shopfloor.alarms.notify.status import NotifyStatus
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.notifications import MIN_SECRET_CHARS, Notifications
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("shopfloor-state/alarms")
QUEUE_FILE = "notifications.sqlite"
STOP_WAIT_S = 15.0
InstanceOf = Callable[[str, str], Instance | None]


def open_queue(settings: Notifications) -> NotificationQueue:
    """The queue file of `settings` (`state_dir`, default shopfloor-state/alarms)."""
    state_dir = Path(settings.state_dir) if settings.state_dir else DEFAULT_STATE_DIR
    return NotificationQueue(state_dir / QUEUE_FILE, settings.max_bytes,
                             settings.dead_letter_after_s)


def secrets_of(settings: Notifications, env: Mapping[str, str]) -> dict[str, bytes]:
    """Each webhook's secret from its environment variable; NotifyError naming every
    variable that is missing or too short."""
    secrets, problems = {}, []
    for i, webhook in enumerate(settings.webhooks):
        value = env.get(webhook.secret_env, "")
        if len(value.strip()) < MIN_SECRET_CHARS:
            problems.append(f"notifications.webhooks[{i}].secret_env: {webhook.secret_env} "
                            f"is {'unset' if not value else 'too short'} (a random secret "
                            f"of at least {MIN_SECRET_CHARS} characters)")
        secrets[webhook.id] = value.encode()
    if problems:
        raise NotifyError("; ".join(problems))
    return secrets


class Notifier:
    def __init__(self, plant: Plant, instance_of: InstanceOf,
                 env: Mapping[str, str] = os.environ) -> None:
        self.site = plant.site.id
        self.settings = plant.notifications
        secrets = secrets_of(self.settings, env)
        self.queue = open_queue(self.settings)

        self._instance_of = instance_of
        self.senders = {w.id: Sender(w, secrets[w.id], self.queue, self.settings.retry_max_s,
                                     self.settings.dead_letter_after_s)
                        for w in self.settings.webhooks}
        self._delivery = Delivery(list(self.senders.values()))
        self._failures = FailureLog(log, f"notification queue {self.queue.path}")
        self.status = NotifyStatus(self)

    def start(self) -> None:
        orphans = {target for (target, state), n in self.queue.counts().items()
                   if state is RowState.PENDING and n and target not in self.senders}
        if orphans:
            log.warning("notification queue %s holds undelivered notifications of webhooks "
                        "no longer in the plant file: %s (kept, not sent)", self.queue.path,
                        sorted(orphans))
        self._delivery.start()
        self.status.start(self.settings.metrics_port)
        if self.senders:
            log.info("notifications: %d webhook(s), queue %s", len(self.senders),
                     self.queue.path)

    def stop(self) -> None:
        self._delivery.stop(STOP_WAIT_S)
        self.status.stop()
        self.queue.close()

    def notify(self, records: list[Record], now: float) -> None:
        """Queue the notifications of these transitions; start escalations for alarms
        that became unacknowledged, cancel those of alarms that no longer are."""
        notifications: list[Notification] = []
        start: dict[tuple[str, str], list[Pending]] = {}
        cancel: set[tuple[str, str]] = set()
        for record in records:
            instance, transition = record.instance, record.transition
            notifications += self._transition(record, now)
            where = (instance.machine, instance.rule.kind)
            if transition.to_state in UNACKED:
                start.setdefault(where, self._escalations(instance, transition.at))
            else:
                start.pop(where, None)
                cancel.add(where)
        self._add(notifications, now, [p for ps in start.values() for p in ps], list(cancel))

    def tick(self, now: float) -> None:
        """Send the escalations due by `now` whose alarm is still unacknowledged."""
        due = self.queue.due(now) if self.settings.escalations else []
        if not due:
            return
        notifications = []
        for pending in due:
            instance = self._instance_of(pending.machine, pending.rule)
            if instance is not None and instance.alarm.state in UNACKED \
                    and pending.index < len(self.settings.escalations):
                notifications.append(self._escalation(instance, pending, now))
        self._add(notifications, now, finish=due)

    def _add(self, notifications: list[Notification], now: float,
             start: list[Pending] | None = None, cancel: list[tuple[str, str]] | None = None,
             finish: list[Pending] | None = None) -> None:
        if not (notifications or start or cancel or finish):
            return
        try:
            self.queue.add(notifications, now, start or [], cancel or [], finish or [])
        except NotifyError as exc:  # never stops alarm evaluation; said loudly
            self._failures.failure("%s", exc)
            return
        self._failures.success()
        self._delivery.wake({n.target for n in notifications})

    def _transition(self, record: Record, now: float) -> list[Notification]:
        instance, transition = record.instance, record.transition
        targets = self.settings.targets_for(instance.rule.severity, instance.line,
                                            instance.rule.kind)
        if not targets:
            return []
        alarm = payload_of(self.site, instance, transition, now).model_copy(
            update={"state": transition.to_state})  # the state this transition made
        key = message.transition_key(alarm)
        event = message.EventType.TRANSITION
        body = message.WebhookBody(key=key, type=event, alarm=alarm).to_json()
        instance_id = f"{instance.machine}:{instance.rule.kind}"
        return [Notification(t.id, instance_id, key, event, body) for t in targets]

    def _escalations(self, instance: Instance, raised_at: float) -> list[Pending]:
        return [Pending(instance.machine, instance.rule.kind, i, raised_at,
                        raised_at + escalation.after_s)
                for i, escalation in enumerate(self.settings.escalations)
                if escalation.matches(instance.rule.severity, instance.line,
                                      instance.rule.kind)]

    def _escalation(self, instance: Instance, pending: Pending, now: float) -> Notification:
        escalation = self.settings.escalations[pending.index]
        raised_at = dt.datetime.fromtimestamp(pending.raised_at, dt.UTC)
        alarm = payload_of(self.site, instance, None, now)
        key = message.escalation_key(alarm, pending.index, raised_at)
        body = message.WebhookBody(
            key=key, type=message.EventType.ESCALATION, alarm=alarm,
            escalation=message.EscalationInfo(after_s=escalation.after_s,
                                              raised_at=raised_at)).to_json()
        return Notification(escalation.to, f"{instance.machine}:{instance.rule.kind}", key,
                            message.EventType.ESCALATION, body)


class Silent:
    """The notifier of a plant without webhooks: no queue file, nothing to do."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def notify(self, records: list[Record], now: float) -> None:
        pass

    def tick(self, now: float) -> None:
        pass


def open_notifier(plant: Plant, instance_of: InstanceOf) -> Notifier | Silent:
    """A Notifier when the plant file has webhooks, else a Silent one."""
    return Notifier(plant, instance_of) if plant.notifications.webhooks else Silent()
