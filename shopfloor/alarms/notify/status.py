"""What the notifier shows about itself: Prometheus metrics read from the queue at each
scrape (so they are right across restarts) and a /healthz summary, served on
`notifications.metrics_port` by the shared status server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from shopfloor.alarms.notify.queue import RowState
from shopfloor.shared.status_server import StatusFigures

if TYPE_CHECKING:
    from shopfloor.alarms.notify.notifier import Notifier


class NotifyStatus(StatusFigures):
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        super().__init__()

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per target: notifications pending, delivered (keys still kept), dead letters;
        whether it is failing now and its last error."""
        counts = self._notifier.queue.counts()
        return {target: {
            **{str(state): counts.get((target, state), 0) for state in RowState},
            "failing": sender.failing, "last_error": sender.last_error,
        } for target, sender in self._notifier.senders.items()}

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while no target is failing; the details either way."""
        targets = self.summary()
        return not any(t["failing"] for t in targets.values()), {
            "webhooks": targets, "dropped": self._notifier.queue.dropped}

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        held = GaugeMetricFamily(
            "shopfloor_alarms_notifications", "Notifications in the queue by target and "
            "state (pending; delivered: keys kept against duplicates; dead: dead letters)",
            labels=["target", "state"])
        counts = self._notifier.queue.counts()
        for target in self._notifier.senders:
            for state in RowState:
                held.add_metric([target, str(state)], counts.get((target, state), 0))
        yield held
        failed = CounterMetricFamily(
            "shopfloor_alarms_notification_attempts_failed",
            "Delivery attempts that failed (since start)", labels=["target"])
        for target, sender in self._notifier.senders.items():
            failed.add_metric([target], sender.attempts_failed)
        yield failed
        yield CounterMetricFamily(
            "shopfloor_alarms_notifications_dropped",
            "Undelivered notifications dropped because the queue was full (since start)",
            value=self._notifier.queue.dropped)
