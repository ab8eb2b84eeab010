"""The agent's own Prometheus metrics, in a registry per agent (several agents can run
in one process, e.g. in tests). Served on `agent.metrics_port` at /metrics.

What every poll and every PUBACK counts is kept in plain numbers (`MachineTally`,
`shared/plainmetrics.py`) and read when scraped: `prometheus_client`'s per-call locks
were a few per cent of the agent's CPU at 1,000 polls a second."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from shopfloor.shared.plainmetrics import (
    BucketHistogram,
    CounterFamily,
    GaugeFamily,
    PlainCounter,
)

_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_JITTER_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)


@dataclass(slots=True)
class MachineTally:
    """One machine's poll counts, added to by its poller."""

    polls: int = 0
    shed: int = 0
    """Scheduled polls shed under overload."""
    late: int = 0
    """Scheduled polls missed because the poller woke after its next tick."""
    online: int | None = None
    """1 answering, 0 offline, None before its first reading (not exported then)."""


class EdgeMetrics:
    """Every metric the edge agent exports (names prefixed `shopfloor_edge_`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.machines: dict[str, MachineTally] = {}
        r.register(CounterFamily("shopfloor_edge_polls", "Polls made", ["machine"],
                                 self._polls_rows))
        r.register(CounterFamily(
            "shopfloor_edge_polls_skipped",
            "Scheduled polls not made: shed under overload, or late (the poller woke after "
            "its next tick)",
            ["machine", "reason"],
            self._skipped_rows,
        ))
        self.overloaded = Gauge(
            "shopfloor_edge_overloaded", "1 while the agent sheds polls (overload)", registry=r
        )
        self.poll_admission = Gauge(
            "shopfloor_edge_poll_admission_ratio",
            "Share of scheduled polls made (1: all; lower while overloaded)",
            registry=r,
        )
        self.poll_failures = Counter(
            "shopfloor_edge_poll_failures",
            "Failed reads by kind (connect/timeout/exception)",
            ["machine", "kind"],
            registry=r,
        )
        self.poll_duration = BucketHistogram(
            "shopfloor_edge_poll_duration_seconds",
            "Time to read all blocks of one poll",
            _LATENCY_BUCKETS,
        )
        self.poll_jitter = BucketHistogram(
            "shopfloor_edge_poll_jitter_seconds",
            "Actual poll start minus scheduled start",
            _JITTER_BUCKETS,
        )
        r.register(self.poll_duration)
        r.register(self.poll_jitter)
        self.queue_depth = Gauge(
            "shopfloor_edge_queue_depth", "Telemetry samples held in the outbox", registry=r
        )
        self.published = PlainCounter(
            "shopfloor_edge_published", "Messages acknowledged by the broker (PUBACK)"
        )
        r.register(self.published)
        self.dropped = Counter(
            "shopfloor_edge_dropped", "Samples dropped, by reason", ["reason"], registry=r
        )
        self.quarantined = Counter(
            "shopfloor_edge_quarantined",
            "Outbox rows that could not be published, moved to the quarantine table",
            registry=r,
        )
        self.outbox_writable = Gauge(
            "shopfloor_edge_outbox_writable", "1 when the last outbox commit succeeded", registry=r
        )
        self.task_crashes = Counter(
            "shopfloor_edge_task_crashes",
            "Agent tasks that crashed (and restarted)",
            ["task"],
            registry=r,
        )
        self.commands = Counter(
            "shopfloor_edge_commands", "Commands by outcome", ["outcome"], registry=r
        )
        self.dead_letters = Counter(
            "shopfloor_edge_dead_letters", "Messages sent to the dead-letter topic", registry=r
        )
        self.devices_online = Gauge(
            "shopfloor_edge_devices_online", "Machines answering their polls", registry=r
        )
        r.register(GaugeFamily("shopfloor_edge_device_online", "1 when the machine answers",
                               ["machine"], self._online_rows))
        self.broker_connected = Gauge(
            "shopfloor_edge_broker_connected", "1 when connected to the broker", registry=r
        )

    def machine(self, machine_id: str) -> MachineTally:
        """The poll counts of one machine (exported from now on, zeros included)."""
        return self.machines.setdefault(machine_id, MachineTally())

    def _polls_rows(self) -> Iterator[tuple[tuple[str], int]]:
        for machine, tally in list(self.machines.items()):
            yield (machine,), tally.polls

    def _skipped_rows(self) -> Iterator[tuple[tuple[str, str], int]]:
        for machine, tally in list(self.machines.items()):
            yield (machine, "shed"), tally.shed
            yield (machine, "late"), tally.late

    def _online_rows(self) -> Iterator[tuple[tuple[str], int]]:
        for machine, tally in list(self.machines.items()):
            if tally.online is not None:
                yield (machine,), tally.online
