"""The collector's own Prometheus metrics, in a registry of its own (several collectors
can live in one process, e.g. in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        p = "shopfloor_collector_"
        self.received = Counter(p + "messages_received", "MQTT messages received", ["kind"],
                                registry=r)
        self.values_written = Counter(p + "values_written", "point values stored", registry=r)
        self.points_written = Counter(p + "points_written",
                                      "InfluxDB points (lines) stored", registry=r)
        self.batches = Counter(p + "batches", "batches written", registry=r)
        self.write_seconds = Histogram(p + "write_seconds", "time to store one batch, retries"
                                       " included", buckets=LATENCY_BUCKETS_S, registry=r)
        self.write_failures = Counter(p + "write_failures", "failed write attempts", registry=r)
        self.dead_letters = Counter(p + "dead_letters", "messages dead-lettered", ["reason"],
                                    registry=r)
        self.lost = Counter(p + "lost_samples", "seqs of a stream never received (gap"
                            " still open after the grace period)",
                            ["machine"], registry=r)
        self.missing = Gauge(p + "missing_samples", "seqs in open gaps (lost unless they come"
                             " within the grace period)", ["machine"], registry=r)
        self.late = Counter(p + "late_samples", "samples that arrived after a newer one and"
                            " filled a gap", ["machine"], registry=r)
        self.duplicates = Counter(p + "duplicate_samples", "samples whose seq was seen before",
                                  ["machine"], registry=r)
        self.broker_lag = Histogram(p + "broker_lag_seconds", "receive time - sample ts",
                                    buckets=LAG_BUCKETS_S, registry=r)
        self.pending = Gauge(p + "pending_unacked", "messages received, not yet acknowledged",
                             registry=r)
        self.broker_up = Gauge(p + "broker_connected", "1 when connected to MQTT", registry=r)
        self.database_up = Gauge(p + "database_up", "1 when InfluxDB is reachable and the"
                                 " last write succeeded", registry=r)

    @staticmethod
    def total(counter: Counter) -> float:
        """Sum of a counter over all its labels (for /healthz and tests)."""
        return sum(s.value for m in counter.collect() for s in m.samples
                   if s.name.endswith("_total"))
