"""Turns received messages into batches: validates each (dead-lettering what fails),
follows seq per machine, encodes line protocol, and closes a batch when it holds
`batch_max_values` values, or once it is `batch_max_s` old and the writer is free.

It runs on the MQTT network thread, inside paho's message callback (no queue and no
thread hop per message: see docs/collector.md, "Threads"). Closed batches go to `ready`,
which the writer thread takes from. Metrics are counted per batch, not per message."""

from __future__ import annotations

import bisect
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shopfloor.collector.durations import StateDurations, known_reasons
from shopfloor.collector.encode import NOT_A_POINT, Encoder
from shopfloor.collector.messages import Kind, ParsedMessage, Reason, Rejected, Router
from shopfloor.collector.metrics import LAG_BUCKETS_S, Metrics
from shopfloor.collector.mqtt import Ack
from shopfloor.collector.sequence import IN_ORDER, SequenceTracker
from shopfloor.shared.admission import TimeAdmission, TimeRefused
from shopfloor.shared.contract import StatePayload, Telemetry
from shopfloor.shared.plant import Plant
from shopfloor.shared.schema import to_ms

log = logging.getLogger(__name__)

DeadLetterFn = Callable[[str, Reason, str, bytes], None]
"""(topic, reason, detail, raw payload) -> publishes the dead letter."""
EXPIRE_EVERY_S = 1.0  # how often open seq holes are checked against the grace period


@dataclass(slots=True)
class Batch:
    """Lines to write and the (mid, qos, generation) to ack once they are written.
    `received` counts valid messages per kind, `lag_buckets` their broker lag
    (receive time - sample ts) per `LAG_BUCKETS_S` bucket, for the metrics."""

    lines: list[str] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    messages: list[ParsedMessage] = field(default_factory=list)
    values: int = 0
    opened: float = field(default_factory=time.monotonic)
    received: dict[Kind, int] = field(default_factory=dict)
    lag_buckets: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_S) + 1))
    lag_sum: float = 0.0


class Batcher:
    """The hot path: `add` one message to the open batch, `due` closes it by age.
    Pure apart from the clock (no sockets: dead letters go through `dead_letter`)."""

    def __init__(self, plant: Plant, metrics: Metrics, dead_letter: DeadLetterFn,
                 tracker: SequenceTracker | None = None) -> None:
        self._plant = plant
        self._metrics = metrics
        self._dead_letter = dead_letter
        self.tracker = tracker or SequenceTracker()
        self.durations = StateDurations(known_reasons(plant))
        self._encoder = Encoder(plant)
        self._router = Router(plant)
        self._admission = TimeAdmission.of(plant)
        self._max_values = plant.collector.batch_max_values
        self._max_s = plant.collector.batch_max_s
        self._batch: Batch | None = None

    def add(self, topic: str, payload: bytes, ack: Ack, received_at: float) -> Batch | None:
        """Account one message (its ack always; its line when it is valid); returns the
        batch if this message filled it."""
        batch = self._batch
        if batch is None:
            batch = self._batch = Batch()
        batch.acks.append(ack)
        try:
            self._add(batch, topic, payload, received_at)
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the collector
            log.exception("unexpected error on a message from %s", topic)
            self._reject(topic, Reason.PAYLOAD, f"internal error: {exc!r}", payload)
        if batch.values >= self._max_values:
            return self.close()
        return None

    def due(self, now: float, writer_free: bool) -> tuple[Batch | None, float]:
        """Close the open batch if it is `batch_max_s` old and the writer is free.
        Returns (closed batch or None, seconds until the next check is useful)."""
        batch = self._batch
        if batch is None:
            return None, 1.0
        left = batch.opened + self._max_s - now
        if left > 0:
            return None, left
        if writer_free:
            return self.close(), 1.0
        return None, 0.005  # the writer is busy: keep filling, look again shortly

    def close(self) -> Batch | None:
        batch, self._batch = self._batch, None
        if batch is not None:
            self._count(batch)
        return batch

    def expire_holes(self) -> None:
        """Confirm as lost the seq holes that stayed open longer than the grace period."""
        for machine, count in self.tracker.expire(time.monotonic()).items():
            self._metrics.lost.labels(machine).inc(count)
            self._metrics.missing.labels(machine).set(self.tracker.missing(machine))
            log.warning("%s: %d sample(s) lost (seq gap not filled within %g s)", machine,
                        count, self.tracker.grace_s)

    def _count(self, batch: Batch) -> None:
        m = self._metrics
        for kind, n in batch.received.items():
            m.received.labels(kind.value).inc(n)
        m.broker_lag.add(batch.lag_buckets, batch.lag_sum)

    def _add(self, batch: Batch, topic: str, raw: bytes, received_at: float) -> None:
        result = self._router.classify(topic, raw)
        if result is None:
            return
        if isinstance(result, Rejected):
            self._reject(topic, result.reason, result.detail, raw)
            return
        refused = self._admitted(result, int(received_at * 1000))
        if refused is not None:
            # Before any accounting: a refused message never moves seq state, durations
            # or the live KPI watermark (it never reaches batch.messages).
            self._reject(topic, Reason(refused.reason.value), refused.detail, raw)
            return
        batch.received[result.kind] = batch.received.get(result.kind, 0) + 1
        message = self._account(batch, result, received_at)
        encoded = self._encoder.encode(message, received_at)
        if encoded.bad_points:
            unknown = sum(1 for why in encoded.bad_points.values() if why is NOT_A_POINT)
            if unknown:
                self._metrics.unknown_values.inc(unknown)
            detail = _bad_points_detail(encoded.bad_points)
            self._reject(topic, Reason.POINT, detail, raw)
        if encoded.line is not None:
            batch.lines.append(encoded.line)
            batch.values += max(encoded.values, 1)
        batch.messages.append(message)

    def _admitted(self, message: ParsedMessage, now_ms: int) -> TimeRefused | None:
        """The admission rule (shared.admission): telemetry within both bounds; a state
        not beginning (nor stamped) in the future: a future `since` would hold every
        later state's duration back ("a newer since wins")."""
        if message.kind is Kind.TELEMETRY:
            return self._admission.refuse(message.ts_ms, now_ms)
        if message.kind is Kind.STATE:
            payload = message.payload
            assert isinstance(payload, StatePayload)
            return (self._admission.ahead(to_ms(payload.since), now_ms, "since")
                    or self._admission.ahead(to_ms(payload.ts), now_ms))
        return None

    def _account(self, batch: Batch, message: ParsedMessage,
                 received_at: float) -> ParsedMessage:
        if message.kind is not Kind.TELEMETRY:
            if message.kind is Kind.STATE:
                self._state_durations(batch, message)
            return message
        payload = message.payload
        assert isinstance(payload, Telemetry)
        lag = max(0.0, received_at - message.ts_ms / 1000)
        batch.lag_buckets[bisect.bisect_left(LAG_BUCKETS_S, lag)] += 1
        batch.lag_sum += lag
        machine = message.machine
        seen = self.tracker.observe(machine, payload.seq, time.monotonic(), payload.epoch)
        if seen is IN_ORDER:
            return message
        if seen.opened or seen.late or seen.restarted:
            self._metrics.missing.labels(machine).set(self.tracker.missing(machine))
        if seen.opened:
            log.info("%s: %d sample(s) missing before seq %d (lost unless they come within"
                     " %g s)", machine, seen.opened, payload.seq, self.tracker.grace_s)
        if seen.late:
            self._metrics.late.labels(machine).inc()
        if seen.refilled:
            self._metrics.lost.labels(machine).dec()
        if seen.restarted:
            self._metrics.restarts.labels(machine).inc()
            log.warning("%s: new seq stream at seq %d (epoch %s): accounting starts afresh",
                        machine, payload.seq, payload.epoch)
        if seen.duplicate:
            self._metrics.duplicates.labels(message.machine).inc()
            log.debug("%s: duplicate seq %d", message.machine, payload.seq)
            return dataclasses.replace(message, duplicate=True)
        return message

    def _state_durations(self, batch: Batch, message: ParsedMessage) -> None:
        """The state_duration point of the state this message ends (durations.py)."""
        line = self.durations.observe(message)
        if line is not None:
            batch.lines.append(line)
            batch.values += 1

    def _reject(self, topic: str, reason: Reason, detail: str, raw: bytes) -> None:
        self._metrics.dead_letters.labels(reason.value).inc()
        self._dead_letter(topic, reason, detail, raw)


MAX_DETAILED_POINTS = 20  # a dead letter names this many bad points, then counts the rest


def _bad_points_detail(bad: dict[str, str]) -> str:
    """Why points were left out, bounded: a message may carry any number of keys."""
    names = sorted(bad)
    detail = "; ".join(f"{k}: {bad[k]}" for k in names[:MAX_DETAILED_POINTS])
    if len(names) > MAX_DETAILED_POINTS:
        detail += f"; and {len(names) - MAX_DETAILED_POINTS} more"
    return detail


class Intake:
    """The collector's `mqtt.Receiver`: feeds the `Batcher` on the network thread and
    hands closed batches to the writer through `ready`.

    Until `start_accounting` is called (the writer has recovered the last stored seq of
    every stream from InfluxDB), messages are held as received, so that a restart never
    reports the first samples as gaps or duplicates. Held messages are bounded by the
    broker's receive maximum, like all unacknowledged ones."""

    def __init__(self, batcher: Batcher, ready: queue.Queue[Batch | None],
                 pipeline_depth: int) -> None:
        self.batcher = batcher
        self.ready = ready
        self._depth = pipeline_depth
        self._accounting = threading.Event()
        self._held: list[tuple[str, bytes, Ack, float]] | None = []
        self._next_expiry = time.monotonic() + EXPIRE_EVERY_S

    def start_accounting(self) -> None:
        """Any thread: seq recovery is done; held messages are processed at the next poll."""
        self._accounting.set()

    # ---------------------------------------------------- network thread (Receiver)
    def message(self, topic: str, payload: bytes, ack: Ack, received_at: float) -> None:
        if self._held is not None:
            self._held.append((topic, payload, ack, received_at))
            return
        batch = self.batcher.add(topic, payload, ack, received_at)
        if batch is not None:
            self.ready.put(batch)

    def poll(self) -> float:
        """Time-driven work; returns the seconds until it is due again."""
        if self._held is not None:
            if not self._accounting.is_set():
                return 0.1
            held, self._held = self._held, None
            for item in held:
                self.message(*item)
        now = time.monotonic()
        if now >= self._next_expiry:
            self._next_expiry = now + EXPIRE_EVERY_S
            self.batcher.expire_holes()
        batch, wait_s = self.batcher.due(now, self.ready.qsize() < self._depth)
        if batch is not None:
            self.ready.put(batch)
        return min(wait_s, self._next_expiry - now)

    def flush(self) -> None:
        """Close the open batch whatever its age (at stop)."""
        batch = self.batcher.close()
        if batch is not None:
            self.ready.put(batch)

