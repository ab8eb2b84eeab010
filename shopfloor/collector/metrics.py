"""The collector's own Prometheus metrics, in a registry of its own (several collectors
can live in one process, e.g. in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shopfloor.shared.plainmetrics import BucketHistogram

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
        self.unknown_values = Counter(p + "unknown_values", "telemetry value keys that are"
                                      " not a point of the machine (dropped)", registry=r)
        self.lost = Gauge(p + "lost_samples", "seqs of a stream never received (gap"
                          " still open after the grace period), less those that came"
                          " later (late_samples)", ["machine"], registry=r)
        self.missing = Gauge(p + "missing_samples", "seqs in open gaps (lost unless they come"
                             " within the grace period)", ["machine"], registry=r)
        self.late = Counter(p + "late_samples", "samples that arrived after a newer one and"
                            " filled a gap", ["machine"], registry=r)
        self.restarts = Counter(p + "stream_restarts", "new seq streams: a new epoch"
                                " or a seq jump beyond the bound", ["machine"], registry=r)
        self.duplicates = Counter(p + "duplicate_samples", "samples whose seq was seen before",
                                  ["machine"], registry=r)
        self.broker_lag = BucketHistogram(p + "broker_lag_seconds",
                                          "receive time - sample ts", LAG_BUCKETS_S)
        r.register(self.broker_lag)
        self.pending = Gauge(p + "pending_unacked", "messages received, not yet acknowledged",
                             registry=r)
        self.broker_up = Gauge(p + "broker_connected", "1 when connected to MQTT", registry=r)
        self.database_up = Gauge(p + "database_up", "1 when InfluxDB is reachable and the"
                                 " last write succeeded", registry=r)

    @staticmethod
    def total(metric: Counter | Gauge) -> float:
        """Sum of a counter or gauge over all its labels (for /healthz and tests)."""
        return sum(s.value for m in metric.collect() for s in m.samples
                   if s.name in (m.name, m.name + "_total"))
