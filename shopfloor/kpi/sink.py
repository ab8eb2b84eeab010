"""The live KPI engine as the collector's batch sink, off the write path.

`LiveKpiWorker.on_batch` only converts the batch's telemetry into samples and queues
them (microseconds); a daemon thread owns the `LiveKpi` state, takes the samples and
ticks every `collector.kpi_period_s`. `attach(collector)` wires it into a
`shopfloor.collector.service.Collector` before `start`."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from shopfloor.collector.sinks import WrittenBatch
from shopfloor.kpi.live import LiveKpi, to_sample
from shopfloor.kpi.model import Sample
from shopfloor.shared.contract import Telemetry

log = logging.getLogger(__name__)


class LiveKpiWorker:
    def __init__(self, live: LiveKpi) -> None:
        self.live = live
        self._queue: queue.Queue[list[tuple[str, Sample]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="kpi-live", daemon=True)
        self._thread.start()

    def on_batch(self, batch: WrittenBatch) -> None:
        items = [(m.machine, to_sample(m.payload)) for m in batch.telemetry()
                 if isinstance(m.payload, Telemetry)]
        if items:
            self._queue.put(items)

    def _run(self) -> None:
        period = self.live.period_s
        next_tick = time.monotonic() + period
        while True:
            try:
                items = self._queue.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                items = []
            for machine, sample in items:
                self.live.add(machine, sample)
            if time.monotonic() >= next_tick:
                self.live.tick()  # never raises: failures are logged and retried
                next_tick = time.monotonic() + period


def attach(collector: Any) -> LiveKpiWorker:
    """Register the live KPI sink on a Collector (before `start`); KPIs are published
    retained through the collector's MQTT client."""
    def publish(topic: str, payload: bytes) -> None:
        collector.subscriber.client.publish(topic, payload, qos=1, retain=True)

    worker = LiveKpiWorker(LiveKpi(collector.plant, publish=publish))
    collector.add_sink(worker)
    return worker
