"""The live KPI engine as a batch sink, off the host's write path.

`LiveKpiWorker.on_batch` only queues the stored batch (microseconds, on the collector's
writer thread); a daemon thread owns the `LiveKpi` state, turns the batch's telemetry
into samples, adds them and ticks every `collector.kpi_period_s`. The collector plugs it
in (`shopfloor.collector.live_kpi`); this package imports nothing of the collector."""

from __future__ import annotations

import logging
import queue
import threading
import time

from shopfloor.kpi.feed import StoredBatch
from shopfloor.kpi.live import LiveKpi
from shopfloor.kpi.model import Sample
from shopfloor.shared.logs import FailureLog

log = logging.getLogger(__name__)


class LiveKpiWorker:
    def __init__(self, live: LiveKpi) -> None:
        self.live = live
        self._queue: queue.Queue[StoredBatch] = queue.Queue()
        self._failures = FailureLog(log, "kpi-live thread")
        self._thread = threading.Thread(target=self._run, name="kpi-live", daemon=True)
        self._thread.start()

    def on_batch(self, batch: StoredBatch) -> None:
        self._queue.put(batch)

    def _run(self) -> None:
        period = self.live.period_s
        next_tick = time.monotonic() + period
        while True:
            try:
                batch: StoredBatch | None = self._queue.get(
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


def samples(live: LiveKpi, batch: StoredBatch | None) -> list[tuple[str, Sample]]:
    """The batch's admitted samples (`LiveKpi.samples_of`)."""
    return [] if batch is None else live.samples_of(batch)
