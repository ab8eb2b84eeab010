"""The durable outbox, async side: samples and their sequence numbers are collected in
memory and written to SQLite in one transaction every `COMMIT_INTERVAL_S` (group
commit), together with the deletions of PUBACKed rows; a command result, which an API
caller waits for, is committed at once. Nothing is published before its
commit: the publisher reads only committed rows.

Commits and reads run on the event loop thread: in WAL mode with synchronous=NORMAL a
commit does not fsync and takes well under a millisecond for a batch, while a database
thread would fight the loop for the GIL at every row (sqlite3 releases it per step) and
crawl when the loop is busy. The fsyncs happen in WAL checkpoints, which run on a worker
thread every `CHECKPOINT_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3

from shopfloor.edge.errors import OutboxError
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.store import Batch, Message, Row, Store
from shopfloor.shared.logs import FailureLog

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.05
CHECKPOINT_INTERVAL_S = 1.0


class Outbox:
    """Owned by the event loop thread."""

    def __init__(self, store: Store, metrics: EdgeMetrics) -> None:
        self._store = store
        self._metrics = metrics
        self._batch = Batch()
        self._next_seq = {m: s + 1 for m, s in store.seqs().items()}
        self._failures = FailureLog(log, f"outbox {store.path}")
        self.committed = asyncio.Event()
        self._urgent = asyncio.Event()
        self.sent_upto = 0
        """Highest row id the publisher handed to the broker (never dropped)."""
        self.drops = 0
        """Counts commits that dropped rows: the publisher refetches after one."""

    def next_seq(self, machine: str) -> int:
        """The next sequence number of a machine's telemetry stream (persisted with the
        batch that carries the sample)."""
        seq = self._next_seq.get(machine, 0)
        self._next_seq[machine] = seq + 1
        self._batch.seqs[machine] = seq
        return seq

    def put(self, message: Message, urgent: bool = False) -> None:
        """Queue a message for the next group commit; `urgent` (a command result, which a
        caller is waiting for) commits now instead of at the next interval."""
        self._batch.messages.append(message)
        if urgent:
            self._urgent.set()

    def put_state(self, machine: str, topic: str, payload: bytes) -> None:
        """A retained state message, also remembered as the machine's last state."""
        self._batch.messages.append(Message(topic, payload, retain=True))
        self._batch.states[machine] = payload

    def ack(self, row_id: int, sample: bool) -> None:
        (self._batch.acked_samples if sample else self._batch.acked_other).append(row_id)

    @property
    def depth(self) -> int:
        return self._store.samples

    async def run(self) -> None:
        """Group-commit loop (a supervised task): every COMMIT_INTERVAL_S, or at once
        when an urgent message is queued."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(COMMIT_INTERVAL_S):
                    await self._urgent.wait()
            self._urgent.clear()
            await self.commit()

    async def checkpoints(self) -> None:
        """WAL checkpoints on a worker thread (a supervised task)."""
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_S)
            try:
                await asyncio.to_thread(self._store.checkpoint)
            except sqlite3.Error as exc:
                log.debug("checkpoint of %s failed: %s", self._store.path, exc)

    async def commit(self) -> None:
        batch, self._batch = self._batch, Batch()
        if not batch:
            return
        try:
            dropped = self._store.commit(batch, self.sent_upto)
        except OutboxError as exc:
            self._failures.failure("%s (kept in memory, retrying)", exc)
            self._requeue(batch)
            return
        self._failures.success()
        if dropped:
            self.drops += 1
            self._metrics.dropped.labels("queue_full").inc(dropped)
            log.warning(
                "outbox full (%d samples): dropped %d sample(s) (%s)",
                self._store.max_samples,
                dropped,
                self._store.when_full,
            )
        if batch.messages:
            self.committed.set()

    def _requeue(self, batch: Batch) -> None:
        newer = self._batch
        batch.messages.extend(newer.messages)
        batch.seqs.update(newer.seqs)
        batch.states.update(newer.states)
        batch.acked_samples.extend(newer.acked_samples)
        batch.acked_other.extend(newer.acked_other)
        self._batch = batch

    def fetch(self, after_id: int, limit: int) -> list[Row]:
        return self._store.fetch(after_id, limit)

    def claim_command(self, command_id: str, machine: str, now_s: float) -> bool:
        return self._store.claim_command(command_id, machine, now_s)

    async def close(self) -> None:
        """Commit what is pending and close the database."""
        await self.commit()
        self._store.close()
