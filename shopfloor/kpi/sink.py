"""The live KPI engine as the collector's batch sink, off the write path.

`LiveKpiWorker.on_batch` only queues the written batch (microseconds, on the collector's
writer thread); a daemon thread owns the `LiveKpi` state, turns the batch's telemetry
into samples, adds them and ticks every `collector.kpi_period_s`. `attach(collector)`
wires it into a `shopfloor.collector.service.Collector` before `start`."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from shopfloor.collector.sinks import WrittenBatch
from shopfloor.kpi.live import LiveKpi
from shopfloor.kpi.model import Sample
from shopfloor.shared.logs import FailureLog

log = logging.getLogger(__name__)


class LiveKpiWorker:
    def __init__(self, live: LiveKpi) -> None:
        self.live = live
        self._queue: queue.Queue[WrittenBatch] = queue.Queue()
        self._failures = FailureLog(log, "kpi-live thread")
        self._thread = threading.Thread(target=self._run, name="kpi-live", daemon=True)
        self._thread.start()

    def on_batch(self, batch: WrittenBatch) -> None:
        self._queue.put(batch)

    def _run(self) -> None:
        period = self.live.period_s
        next_tick = time.monotonic() + period
        while True:
            try:
                batch: WrittenBatch | None = self._queue.get(
                    timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                batch = None
            try:
                for machine, sample in samples(self.live, batch):
                    self.live.add(machine, sample)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + period
                    self.live.tick()  # store/MQTT failures are logged and retried inside
            except Exception as exc:  # noqa: BLE001 - a bug must not stop live KPIs for good
                self._failures.failure("live KPI engine failed: %r", exc)
            else:
                self._failures.success()


def samples(live: LiveKpi, batch: WrittenBatch | None) -> list[tuple[str, Sample]]:
    """The batch's admitted samples (`LiveKpi.samples_of`)."""
    return [] if batch is None else live.samples_of(batch)


def attach(collector: Any) -> LiveKpiWorker:
    """Register the live KPI sink on a Collector (before `start`); KPIs are published
    retained through the collector's MQTT client."""
    def publish(topic: str, payload: bytes) -> None:
        collector.subscriber.client.publish(topic, payload, qos=1, retain=True)

    worker = LiveKpiWorker(LiveKpi(collector.plant, publish=publish))
    collector.add_sink(worker)
    return worker
