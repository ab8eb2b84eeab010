"""Turns received messages into batches: validates each (dead-lettering what fails),
follows seq per machine, encodes line protocol, and closes a batch at
`batch_max_values` values or `batch_max_s` after its first message."""

from __future__ import annotations

import dataclasses
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shopfloor.collector.encode import Encoder
from shopfloor.collector.messages import Kind, ParsedMessage, Reason, Rejected, classify
from shopfloor.collector.metrics import Metrics
from shopfloor.collector.mqtt import Inbound
from shopfloor.collector.sequence import SequenceTracker
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)

DeadLetterFn = Callable[[str, Reason, str, bytes], None]
"""(topic, reason, detail, raw payload) -> publishes the dead letter."""


@dataclass(slots=True)
class Batch:
    """Lines to write and the (mid, qos, generation) to ack once they are written."""

    lines: list[str] = field(default_factory=list)
    acks: list[tuple[int, int, int]] = field(default_factory=list)
    messages: list[ParsedMessage] = field(default_factory=list)
    values: int = 0
    opened: float = field(default_factory=time.monotonic)


class Batcher:
    """Pure-ish core of the collector's hot path (no sockets: dead letters go through
    `dead_letter`, batches are returned)."""

    def __init__(self, plant: Plant, metrics: Metrics, dead_letter: DeadLetterFn,
                 tracker: SequenceTracker | None = None) -> None:
        self._plant = plant
        self._metrics = metrics
        self._dead_letter = dead_letter
        self.tracker = tracker or SequenceTracker()
        self._encoder = Encoder(plant)
        self._max_values = plant.collector.batch_max_values
        self._max_s = plant.collector.batch_max_s
        self._received = {kind: metrics.received.labels(kind.value) for kind in Kind}

    def expire_holes(self) -> None:
        """Confirm as lost the seq holes that stayed open longer than the grace period."""
        for machine, count in self.tracker.expire(time.monotonic()).items():
            self._metrics.lost.labels(machine).inc(count)
            self._metrics.missing.labels(machine).set(self.tracker.missing(machine))
            log.warning("%s: %d sample(s) lost (seq gap not filled within %g s)", machine,
                        count, self.tracker.grace_s)

    def next_batch(self, inbox: queue.Queue[Inbound], wait_s: float = 0.5) -> Batch | None:
        """Block up to `wait_s` for a first message, then fill until full or aged."""
        self.expire_holes()
        try:
            first = inbox.get(timeout=wait_s)
        except queue.Empty:
            return None
        batch = Batch()
        self.add(batch, first)
        deadline = batch.opened + self._max_s
        while batch.values < self._max_values:
            remaining = deadline - time.monotonic()
            try:
                item = inbox.get_nowait() if remaining <= 0 else inbox.get(timeout=remaining)
            except queue.Empty:
                break
            self.add(batch, item)
            if remaining <= 0:
                break
        return batch

    def add(self, batch: Batch, item: Inbound) -> None:
        """Account one message in `batch` (its ack always; its line when it is valid)."""
        batch.acks.append((item.mid, item.qos, item.generation))
        try:
            self._add(batch, item)
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the collector
            log.exception("unexpected error on a message from %s", item.topic)
            self._reject(item.topic, Reason.PAYLOAD, f"internal error: {exc!r}", item.payload)

    def _add(self, batch: Batch, item: Inbound) -> None:
        result = classify(self._plant, item.topic, item.payload)
        if result is None:
            return
        if isinstance(result, Rejected):
            self._reject(item.topic, result.reason, result.detail, item.payload)
            return
        self._received[result.kind].inc()
        message = self._account(result, item.received_at)
        encoded = self._encoder.encode(message, item.received_at)
        if encoded.bad_points:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(encoded.bad_points.items()))
            self._reject(item.topic, Reason.POINT, detail, item.payload)
        if encoded.line is not None:
            batch.lines.append(encoded.line)
            batch.values += max(encoded.values, 1)
        batch.messages.append(message)

    def _account(self, message: ParsedMessage, received_at: float) -> ParsedMessage:
        if message.kind is not Kind.TELEMETRY:
            return message
        payload = message.payload
        assert isinstance(payload, Telemetry)
        self._metrics.broker_lag.observe(max(0.0, received_at - payload.ts.timestamp()))
        machine = message.machine
        seen = self.tracker.observe(machine, payload.seq, time.monotonic())
        if seen.opened or seen.late:
            self._metrics.missing.labels(machine).set(self.tracker.missing(machine))
        if seen.opened:
            log.info("%s: %d sample(s) missing before seq %d (lost unless they come within"
                     " %g s)", machine, seen.opened, payload.seq, self.tracker.grace_s)
        if seen.late:
            self._metrics.late.labels(machine).inc()
        if seen.duplicate:
            self._metrics.duplicates.labels(message.machine).inc()
            log.debug("%s: duplicate seq %d", message.machine, payload.seq)
            return dataclasses.replace(message, duplicate=True)
        return message

    def _reject(self, topic: str, reason: Reason, detail: str, raw: bytes) -> None:
        self._metrics.dead_letters.labels(reason.value).inc()
        self._dead_letter(topic, reason, detail, raw)
