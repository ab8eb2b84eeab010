"""The collector process: wires the MQTT subscriber, the batcher, the durable writer,
the sinks and the status server together, in two threads:

* the network thread (`collector-mqtt`) receives, validates, accounts and encodes each
  message into the open batch (`Intake`, `Batcher`) and never acks by itself;
* the writer thread stores each closed batch, then acks its messages, then calls the
  sinks.

Nothing is acknowledged before it is written, so a kill -9 at any point loses nothing."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from typing import Any

from shopfloor.collector.batcher import Batch, Batcher, Intake
from shopfloor.collector.deadletters import DeadLetters
from shopfloor.collector.messages import Kind, Reason
from shopfloor.collector.metrics import Metrics
from shopfloor.collector.mqtt import Subscriber
from shopfloor.collector.recovery import recover_last_seq, recover_last_states
from shopfloor.collector.sinks import BatchSink, SinkRunner, WrittenBatch
from shopfloor.collector.stats import LagWindow, StatsReporter, read_snapshot
from shopfloor.collector.writer import DurableWriter
from shopfloor.shared.access import client_id_of
from shopfloor.shared.influx import DatabaseUnavailable, LineWriter
from shopfloor.shared.plant import Plant
from shopfloor.shared.status_server import StatusServer

log = logging.getLogger(__name__)
PIPELINE_DEPTH = 1  # closed batches waiting for the writer before aged ones stay open


class Collector:
    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.metrics = Metrics()
        # Closed batches; unbounded, but what is unacknowledged is bounded by the broker's
        # receive maximum (mqtt.RECEIVE_MAXIMUM messages).
        self._batches: queue.Queue[Batch | None] = queue.Queue()
        self._stop = threading.Event()
        self._sinks = SinkRunner()
        self.dead_letters = DeadLetters(plant.site.id,
                                        lambda topic, raw: self.subscriber.publish(topic, raw))
        self.batcher = Batcher(plant, self.metrics, self.dead_letters)
        self.intake = Intake(self.batcher, self._batches, PIPELINE_DEPTH)
        self.subscriber = Subscriber(plant, self.intake)
        self.db = DurableWriter(plant.database, self._stop, on_connected=self._recover)
        self._threads: list[threading.Thread] = []
        self.status: StatusServer | None = None
        self._done = 0  # messages whose batch was written (written by the writer thread)
        self._ready = threading.Event()
        self.metrics.pending.set_function(lambda: self.pending)  # evaluated at each scrape
        self.metrics.broker_up.set_function(lambda: int(self.subscriber.connected))
        self.metrics.database_up.set_function(lambda: int(self.db.up))
        self.lags = LagWindow()  # write time - sample ts of the telemetry written
        self.stats = StatsReporter(
            plant.site.id, client_id_of(plant.broker, plant.collector.client_id),
            plant.collector.stats_period_s or 0.0,
            lambda: read_snapshot(self.metrics, self.subscriber.received, self.pending,
                                  self.lags.take()),
            lambda: self.db.writer.write if self.db.writer is not None else None,
            self._stop, time.time,
        )

    def add_sink(self, sink: BatchSink) -> None:
        """Register a sink (see the package docstring); call before `start`."""
        self._sinks.add(sink)

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Publish a retained QoS 1 message through the collector's MQTT publish path
        (what a plugged-in sink such as the live KPI engine publishes with)."""
        self.subscriber.publish(topic, payload, retain=True)

    def start(self, metrics_port: int | None = None) -> Collector:
        port = metrics_port if metrics_port is not None else self.plant.collector.metrics_port
        if port is not None:
            self.status = StatusServer(port, self.health, registry=self.metrics.registry)
            self.status.start()
        self.subscriber.start()
        self._spawn("collector-writer", self._write_loop)
        if self.plant.collector.stats_period_s is not None:
            self._spawn("collector-stats", self.stats.run)
        return self

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _recover(self, writer: LineWriter) -> None:
        self.batcher.tracker.recover(*recover_last_seq(writer, self.plant))
        self.batcher.durations.recover(recover_last_states(writer, self.plant))

    def _write_loop(self) -> None:
        try:
            self.db.connect()  # recovers seq before the first message is accounted
        except DatabaseUnavailable:
            return
        self.intake.start_accounting()
        self._ready.set()
        while True:
            batch = self._batches.get()
            if batch is None:
                return
            try:
                self._store(batch)
            except DatabaseUnavailable:
                log.warning("stopping with %d message(s) unacknowledged: the broker keeps them",
                            len(batch.acks))
                return

    def _store(self, batch: Batch) -> None:
        started = time.monotonic()
        attempts_before = self.db.failed_attempts
        rejected = self.db.store(batch.lines)
        self.metrics.write_failures.inc(self.db.failed_attempts - attempts_before)
        self.metrics.write_seconds.observe(time.monotonic() - started)
        for line, reason in rejected:
            self.dead_letters("(influxdb write)", Reason.REJECTED_BY_DATABASE, reason,
                              line.encode())
            self.metrics.dead_letters.labels(Reason.REJECTED_BY_DATABASE.value).inc()
        self.subscriber.ack(batch.acks)
        self._done += len(batch.acks)
        self.metrics.batches.inc()
        self.metrics.points_written.inc(len(batch.lines) - len(rejected))
        self.metrics.values_written.inc(batch.values)
        written_at = time.time()
        self.lags.add(written_at - m.ts_ms / 1000 for m in batch.messages
                      if m.kind is Kind.TELEMETRY and not m.duplicate)
        if self._sinks and batch.messages:
            self._sinks.deliver(WrittenBatch(batch.messages,
                                             dt.datetime.fromtimestamp(written_at, dt.UTC)))

    @property
    def pending(self) -> int:
        """Messages received and not yet acknowledged (or, for QoS 0, not yet handled)."""
        return self.subscriber.received - self._done

    def health(self) -> tuple[bool, dict[str, Any]]:
        broker = self.subscriber.connected
        database = self.db.up
        m = self.metrics
        return broker and database, {
            "broker_connected": broker,
            "database_up": database,
            "received": m.total(m.received),
            "values_written": m.total(m.values_written),
            "dead_letters": m.total(m.dead_letters),
            "lost_samples": m.total(m.lost),
            "missing_samples": sum(s.value for g in m.missing.collect() for s in g.samples),
            "late_samples": m.total(m.late),
            "stream_restarts": m.total(m.restarts),
            "duplicate_samples": m.total(m.duplicates),
            "pending_unacked": self.pending,
        }

    def wait_ready(self, timeout_s: float) -> bool:
        """True once InfluxDB is prepared and the subscription is in place."""
        deadline = time.monotonic() + timeout_s
        return self._ready.wait(timeout_s) and self.subscriber.subscribed.wait(
            max(0.0, deadline - time.monotonic())
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush: the open batch is closed, the writer stores and acks what it has (unless
        InfluxDB is down: then the broker keeps it), then the session is left."""
        deadline = time.monotonic() + timeout_s
        self.subscriber.drain(timeout_s / 2)
        self._stop.set()  # ends the writer's retries if InfluxDB is down
        self._batches.put(None)
        for thread in reversed(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        self.subscriber.stop()
        self.db.close()
        if self.status is not None:
            self.status.stop()
