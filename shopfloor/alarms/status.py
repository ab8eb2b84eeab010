"""What `shopfloor alarms` shows about itself on `alarms.metrics_port` (the shared status
server): `/healthz` and `/metrics`, read from the service when asked (nothing is counted
on the hot path). With webhooks, the notifier's own figures (notify/status.py) are served
on the same port.

Healthy means: connected to the broker, the alarm state restored from it (evaluating),
the loop ticking, and the database taking the transitions (none waiting because it is
failing). The body says which of these is not so."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from shopfloor.shared.enums import AlarmState
from shopfloor.shared.status_server import StatusFigures

if TYPE_CHECKING:
    from shopfloor.alarms.service import AlarmService

STALLED_AFTER_S = 10.0
"""The loop ticks every second; this long without a tick and the component is unhealthy."""


class AlarmStatus(StatusFigures):
    def __init__(self, service: AlarmService) -> None:
        self._service = service
        super().__init__()
        self._notifier = getattr(service.notifier, "status", None)  # None without webhooks
        if self._notifier is not None:
            self.registry.register(self._notifier)

    def health(self) -> tuple[bool, dict[str, Any]]:
        s = self._service
        tick_age = time.monotonic() - s.last_tick
        detail: dict[str, Any] = {
            "broker_connected": s.broker_connected,
            "restored": s.live,
            "last_tick_age_s": round(tick_age, 1),
            "database_failing": s.database_failing,
            "pending_lines": len(s.pending),
            "dropped_lines": s.dropped_lines,
            "instances": self.states(),
        }
        ok = (s.broker_connected and s.live and tick_age < STALLED_AFTER_S
              and not s.database_failing)
        if self._notifier is not None:
            webhooks_ok, webhooks = self._notifier.health()
            detail["notifications"] = webhooks
            ok = ok and webhooks_ok
        return ok, detail

    def states(self) -> dict[str, int]:
        counts = Counter(i.alarm.state for i in list(self._service.engine.instances.values()))
        return {str(state): counts.get(state, 0) for state in AlarmState}

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._service
        instances = GaugeMetricFamily("shopfloor_alarms_instances",
                                      "Alarm instances by ISA-18.2 state", labels=["state"])
        for state, n in self.states().items():
            instances.add_metric([state], n)
        yield instances
        yield GaugeMetricFamily("shopfloor_alarms_broker_connected",
                                "1 while connected to the broker", value=int(s.broker_connected))
        yield GaugeMetricFamily("shopfloor_alarms_pending_lines",
                                "Alarm transitions waiting to be written to InfluxDB",
                                value=len(s.pending))
        yield CounterMetricFamily("shopfloor_alarms_dropped_lines",
                                  "Transitions not stored because the pending list was full "
                                  "(the database was down that long)", value=s.dropped_lines)
