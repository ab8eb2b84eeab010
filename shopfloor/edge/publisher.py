"""Feeds the broker from the outbox, in queue order (committed rows, from memory or read
back from SQLite: `Outbox.fetch`), with at most `inflight` messages
waiting for their PUBACK (paho's own queue is unbounded; we never hand it more). A
PUBACK removes the row (at the next group commit). After a reconnect paho resends what
was in flight; after a restart everything still in the outbox is sent again — the
collector recognises repeats by their `seq`. A row that cannot be published (read back
with wrong types, or refused by paho) is quarantined, never retried in a loop.

The express lane: a command result (someone waits for it) is sent as soon as its row is
committed, ahead of whatever backlog is queued (hours of history, or what piled up while
the broker was away), outside the in-flight window. Its row stays in the outbox until the
express copy's PUBACK (a lost connection resends it, as any message in flight); when the
queue order reaches the row it is not sent again. After a restart, a row still in the
outbox goes out in queue order (the API ignores a repeated result)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.mqtt import EdgeMqttLink
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.store import BadRow, Message

log = logging.getLogger(__name__)

FETCH_ROWS = 500
EXPRESS_KEPT = 1000
"""Acknowledged express messages remembered until the queue reaches their rows; past
this many, a row is simply sent again."""


class Publisher:
    def __init__(self, outbox: Outbox, link: EdgeMqttLink, inflight: int,
                 metrics: EdgeMetrics) -> None:
        self._outbox = outbox
        self._link = link
        self._max_inflight = inflight
        self._metrics = metrics
        self._inflight: dict[int, tuple[int, bool]] = {}
        self._buffer: deque[tuple[int, Message]] = deque()
        self._cursor = 0
        self._space = asyncio.Event()
        self._drops_seen = 0
        self._express_inflight: dict[int, bytes] = {}  # mid -> payload
        self._express_rows: dict[bytes, tuple[int, bool] | None] = {}
        """Payload in flight -> its row once the queue reached it (held, not sent)."""
        self._express_acked: set[bytes] = set()  # acknowledged before the queue got there
        self.paused = False
        link.on_publish = self._acked

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    async def run(self) -> None:
        """Publish committed rows for as long as the agent runs (a supervised task)."""
        while True:
            await self._link.connected.wait()
            if self._outbox.express and not self.paused:
                self._send_express()
            elif self.paused or len(self._inflight) >= self._max_inflight:
                self._space.clear()
                await self._space.wait()
            elif self._outbox.drops != self._drops_seen:
                self._forget_buffer()
            elif self._buffer:
                self._send(self._buffer.popleft())
            else:
                await self._refill()

    async def _refill(self) -> None:
        self._outbox.committed.clear()
        if not self._fetch():
            await self._outbox.committed.wait()

    def _fetch(self) -> bool:
        """Read the next committed rows into the buffer; False when there were none (rows
        that cannot be published are skipped: the outbox quarantines them)."""
        fetched = self._outbox.fetch(self._cursor, FETCH_ROWS)
        if fetched.upto <= self._cursor:
            return False
        self._buffer.extend(fetched.rows)
        self._cursor = fetched.upto
        return True

    def _forget_buffer(self) -> None:
        """Rows were dropped from the outbox: read again from what was last sent."""
        self._drops_seen = self._outbox.drops
        self._buffer.clear()
        self._cursor = self._outbox.sent_upto

    def _send_express(self) -> None:
        message = self._outbox.express.popleft()
        try:
            mid = self._link.publish(message.topic, message.payload, retain=message.retain)
        except (ValueError, TypeError):  # its row is quarantined when the queue gets there
            return
        self._express_inflight[mid] = message.payload
        self._express_rows[message.payload] = None

    def _send(self, row: tuple[int, Message]) -> None:
        row_id, message = row
        if self._express_acked and message.payload in self._express_acked:
            self._express_acked.discard(message.payload)  # delivered ahead of the queue
            self._outbox.ack(row_id, message.sample)
            self._outbox.sent_upto = row_id
            self._metrics.published.inc()
            return
        if self._express_rows and message.payload in self._express_rows:
            self._express_rows[message.payload] = (row_id, message.sample)  # its PUBACK acks it
            self._outbox.sent_upto = row_id
            return
        try:
            mid = self._link.publish(message.topic, message.payload, retain=message.retain)
        except (ValueError, TypeError) as exc:  # paho refuses it: it will never go out
            self._outbox.quarantine(BadRow(row_id, f"refused by the MQTT client: {exc}"))
            return
        self._inflight[mid] = (row_id, message.sample)
        self._outbox.sent_upto = row_id

    def _acked(self, mid: int, ok: bool) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            express = self._express_inflight.pop(mid, None)
            if express is None:
                return  # birth / offline status, published directly
            entry = self._express_rows.pop(express, None)
            if entry is None:  # the queue has not reached its row yet
                if ok and len(self._express_acked) < EXPRESS_KEPT:
                    self._express_acked.add(express)
                return
        self._outbox.ack(*entry)
        if ok:
            self._metrics.published.inc()
        else:
            self._metrics.dropped.labels("broker_refused").inc()
        self._refill_slot()
        self._space.set()

    def _refill_slot(self) -> None:
        """Fill the slot a PUBACK freed right here, in the callback that read it, rather
        than in the publisher task's next turn: then the in-flight window turns over once
        per pass of the event loop (EdgeMqttLink writes right after reading), not once every
        few passes, and a loop crowded with pollers cannot starve the publisher
        (docs/edge.md#overload)."""
        if self.paused or self._outbox.drops != self._drops_seen:
            return  # the task handles pausing and refetching after drops
        if self._outbox.express:
            self._send_express()
        if not self._buffer and self._outbox.committed.is_set():
            self._outbox.committed.clear()
            if not self._fetch():
                return
        if self._buffer and len(self._inflight) < self._max_inflight:
            self._send(self._buffer.popleft())

    async def drain(self, timeout_s: float) -> bool:
        """Publish what is committed and wait for its PUBACKs, for at most `timeout_s`;
        then stop sending. What is left stays in the outbox for the next start."""
        try:
            async with asyncio.timeout(timeout_s):
                while (self._inflight or self._buffer
                       or self._outbox.has_rows_after(self._cursor)):
                    await asyncio.sleep(0.02)
        except TimeoutError:
            log.warning(
                "stopping with %d message(s) unacknowledged; they stay in the outbox",
                len(self._inflight) + len(self._buffer),
            )
            return False
        finally:
            self.paused = True
        return True
