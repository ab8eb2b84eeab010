"""The durable outbox, async side: samples and their sequence numbers are collected in
memory and written to SQLite in one transaction (group commit), together with the
deletions of PUBACKed rows. Nothing is published before its commit: the publisher gets
only committed rows, so the wait for the commit is part of every sample's latency. It
gets them from memory (`CommittedRows`: a commit knows its rows' ids), and reads SQLite
only when memory does not hold every row it needs: at start (a backlog), after a failed
commit, after drops (queue full), after a long broker outage (memory is bounded).

When the commit comes (`commit_delay_s`): a new message commits as soon as the event
loop has run the callbacks that were ready with it (all that arrived together share the
commit), but at most one commit per `COMMIT_INTERVAL_S`: a quiet agent adds no wait, a
busy one waits at most that long and commits bigger batches; above ~500 messages a
second the interval grows to `IDLE_COMMIT_S` (`COMMIT_PER_MESSAGE_S`: commits cost
CPU). A command result, which an API caller waits for, commits at once; PUBACKed
deletions alone wait `IDLE_COMMIT_S` for new messages to share their commit, and so do
retries after a failed commit.

Commits and reads run on the event loop thread: in WAL mode with synchronous=NORMAL a
commit does not fsync and takes well under a millisecond for a batch, while a database
thread would fight the loop for the GIL at every row (sqlite3 releases it per step) and
crawl when the loop is busy. The fsyncs happen in WAL checkpoints, which run on a worker
thread every `CHECKPOINT_INTERVAL_S`.

When a commit fails (a full disk, a quota: `queue.max_bytes`), nothing is lost
silently. The bookkeeping (PUBACKed deletions, the streams' seqs, states) is committed
on its own, which needs no new space and frees some; the new messages stay in memory,
at most `pending_max` of them, and are committed as soon as the disk takes them. Beyond
that bound the oldest waiting samples are dropped and counted
(`shopfloor_edge_dropped_total{reason="outbox_unwritable"}`); their seqs were already
used, so the collector sees exactly these samples as a gap and counts them lost. While
commits fail, `problem` says why (the agent's /healthz and status report it).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from dataclasses import dataclass

from shopfloor.edge.committed import MEMORY_ROWS, CommittedRows
from shopfloor.edge.errors import OutboxError
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.store import LAST_ID, BadRow, Batch, Committed, Message, Store
from shopfloor.shared.logs import FailureLog

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 0.01
"""At most one group commit of new messages per this interval (the most a message waits
for its commit while messages keep coming)."""
IDLE_COMMIT_S = 0.05
"""Deletions of PUBACKed rows with no new message, and retries after a failed commit,
wait this long after the last commit."""
COMMIT_PER_MESSAGE_S = 0.002
"""A busy agent's interval grows with the messages the last commit carried (up to
`IDLE_COMMIT_S`): below ~500 messages a second it stays `COMMIT_INTERVAL_S`, above it
goes to `IDLE_COMMIT_S`, where a commit (a transaction, the publisher's read) per 10 ms
cost more CPU than the 40 ms it saves (1,000 machines: ~30 us per poll)."""
CHECKPOINT_INTERVAL_S = 1.0
PENDING_POLLS = 50
"""While commits fail, samples of this many polls per machine wait in memory."""
FAILED_CHUNK = 20
"""After a failed commit, waiting messages are committed this many at a time (a batch
too large for the space left must not block the ones that fit)."""


def commit_delay_s(batch: Batch, urgent: bool, failing: bool,
                   last_messages: int = 0) -> float | None:
    """How long after the last commit the pending `batch` is due (None: nothing to
    commit); `last_messages`: how many messages the last commit carried. Pure: the
    commit loop's rule, tested on its own."""
    if not batch:
        return None
    if urgent:
        return 0.0
    if batch.messages and not failing:
        return min(IDLE_COMMIT_S, max(COMMIT_INTERVAL_S, last_messages * COMMIT_PER_MESSAGE_S))
    return IDLE_COMMIT_S


@dataclass(frozen=True, slots=True)
class Fetched:
    """Publishable (id, message) rows in queue order, and the id up to which every
    committed row was read (bad rows included)."""

    rows: list[tuple[int, Message]]
    upto: int


class Outbox:
    """Owned by the event loop thread."""

    def __init__(self, store: Store, metrics: EdgeMetrics, pending_max: int = 1000,
                 memory_rows: int = MEMORY_ROWS) -> None:
        self._store = store
        self._metrics = metrics
        self._batch = Batch()
        self._next_seq = {m: s + 1 for m, s in store.last_seqs.items()}
        self._failures = FailureLog(log, f"outbox {store.path}")
        self._quarantining: set[int] = set()
        self._recent = CommittedRows(memory_rows)
        """Committed rows the publisher has not taken yet (at most `memory_rows`)."""
        self.pending_max = pending_max
        self.committed = asyncio.Event()
        self._changed = asyncio.Event()
        """Set when something is queued for the commit (the commit loop wakes)."""
        self._urgent = False
        self._express_next: list[Message] = []  # urgent messages of the batch being built
        self.express: deque[Message] = deque()
        """Urgent messages (command results) committed and not yet handed to the
        publisher, which sends them ahead of the queue (publisher.py: the express lane)."""
        self._last_commit_s = float("-inf")
        self._last_messages = 0
        self.sent_upto = 0
        """Highest row id the publisher handed to the broker (never dropped)."""
        self.drops = 0
        """Counts commits that dropped rows: the publisher refetches after one."""
        self.problem: str | None = None
        """Why the last commit failed; None when it succeeded."""
        self._dropping = False

    @property
    def epoch(self) -> int:
        """The stream epoch of this outbox file (sent with every telemetry message)."""
        return self._store.epoch

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
            self._urgent = True
            self._express_next.append(message)
            self._changed.set()
        elif len(self._batch.messages) == 1:
            self._changed.set()  # the first message: the commit may be due sooner

    def put_state(self, machine: str, topic: str, payload: bytes) -> None:
        """A retained state message, also remembered as the machine's last state."""
        self._batch.messages.append(Message(topic, payload, retain=True))
        self._batch.states[machine] = payload
        if len(self._batch.messages) == 1:
            self._changed.set()

    def ack(self, row_id: int, sample: bool) -> None:
        (self._batch.acked_samples if sample else self._batch.acked_other).append(row_id)
        batch = self._batch
        if not batch.messages and len(batch.acked_samples) + len(batch.acked_other) == 1:
            self._changed.set()  # wake only when this is all there is to commit

    @property
    def depth(self) -> int:
        return self._store.samples

    async def run(self) -> None:
        """Group-commit loop (a supervised task): commits each batch when it is due
        (`commit_delay_s`), waking when something new is queued."""
        loop = asyncio.get_running_loop()
        while True:
            self._changed.clear()
            delay = commit_delay_s(self._batch, self._urgent, self.problem is not None,
                                   self._last_messages)
            if delay is None:
                await self._changed.wait()
            elif not await self._changed_before(self._last_commit_s + delay - loop.time()):
                await self.commit()

    async def _changed_before(self, wait_s: float) -> bool:
        """Whether something was queued within `wait_s` (the due time may have moved)."""
        if wait_s <= 0:
            return False
        try:
            async with asyncio.timeout(wait_s):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True

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
        express, self._express_next = self._express_next, []
        self._urgent = False
        self._last_commit_s = asyncio.get_running_loop().time()
        self._last_messages = len(batch.messages)
        if not batch:
            return
        try:
            committed = self._store.commit(batch, self.sent_upto)
        except OutboxError as exc:
            self._express_next = express + self._express_next  # once they are written
            self._failed(batch, exc)
            return
        self._failures.success()
        self.problem = None
        self._dropping = False
        self._quarantined(batch.quarantine)
        self.express.extend(express)
        self._committed(committed)

    def _committed(self, committed: Committed) -> None:
        """After a commit: count what the queue-full policy dropped, hand the new rows
        to the publisher (in memory) and wake it."""
        dropped = committed.dropped
        if dropped:
            self._recent.forget()  # rows it holds may be gone
            self.drops += 1
            self._metrics.dropped.labels("queue_full").inc(dropped)
            log.warning(
                "outbox full (%d samples): dropped %d sample(s) (%s)",
                self._store.max_samples,
                dropped,
                self._store.when_full,
            )
        if committed.messages:
            self._recent.add(committed.after_id, committed.messages)
            self.committed.set()

    def _failed(self, batch: Batch, exc: OutboxError) -> None:
        """Commit what needs no new space, then as many of the messages as fit, oldest
        first; keep the rest (bounded) for the next try. The rows in memory are forgotten:
        the publisher reads them back from SQLite, which has every commit right."""
        self.problem = str(exc)
        self._recent.forget()
        self._failures.failure(
            "%s (new messages wait in memory, at most %d)", exc, self.pending_max
        )
        try:
            self._store.commit(batch.bookkeeping(), self.sent_upto)
        except OutboxError:
            self._requeue(batch)
            self._bound()
            return
        self._quarantined(batch.quarantine)
        messages = batch.messages
        while messages:
            chunk = Batch(messages=messages[:FAILED_CHUNK])
            try:
                committed = self._store.commit(chunk, self.sent_upto)
            except OutboxError:
                break
            messages = messages[FAILED_CHUNK:]
            self._committed(committed)
        self._requeue(Batch(messages=messages))
        self._bound()

    def _bound(self) -> None:
        """Drop the oldest waiting messages beyond `pending_max` (samples first); their
        seqs are used, so the collector counts them lost."""
        messages = self._batch.messages
        excess = len(messages) - self.pending_max
        if excess <= 0:
            return
        samples = [i for i, m in enumerate(messages) if m.sample][:excess]
        gone = set(samples) if len(samples) == excess else set(range(excess))
        self._batch.messages = [m for i, m in enumerate(messages) if i not in gone]
        lost = sum(1 for i in gone if messages[i].sample)
        self._metrics.dropped.labels("outbox_unwritable").inc(lost)
        level = logging.DEBUG if self._dropping else logging.WARNING
        self._dropping = True
        log.log(
            level,
            "outbox unwritable: more than %d messages waiting, dropped the oldest"
            " %d (their seqs show as a gap: counted lost downstream)",
            self.pending_max,
            len(gone),
        )

    def _quarantined(self, bad: list[BadRow]) -> None:
        for row in bad:
            self._quarantining.discard(row.id)
            self._metrics.quarantined.inc()
            log.error(
                "outbox row %d quarantined (kept in table quarantine): %s", row.id, row.reason
            )

    def _requeue(self, batch: Batch) -> None:
        newer = self._batch
        batch.messages.extend(newer.messages)
        batch.seqs.update(newer.seqs)
        batch.states.update(newer.states)
        batch.acked_samples.extend(newer.acked_samples)
        batch.acked_other.extend(newer.acked_other)
        batch.quarantine.extend(newer.quarantine)
        self._batch = batch

    def fetch(self, after_id: int, limit: int) -> Fetched:
        """Up to `limit` committed rows after `after_id` (the caller's cursor: what it
        has read), from memory when it holds them all, else from SQLite; rows that
        cannot be published are moved to the quarantine at the next commit (counted,
        logged), never published."""
        taken = self._recent.take(after_id, limit)
        if taken is not None:
            return Fetched(taken, taken[-1][0] if taken else after_id)
        upto = self._recent.start  # memory holds every row after it
        found = self._store.fetch(after_id, limit, upto)
        rows: list[tuple[int, Message]] = []
        for row in found:
            if isinstance(row, BadRow):
                self.quarantine(row)
            else:
                rows.append(row)
        if len(found) < limit and upto != LAST_ID:
            return Fetched(rows, upto)  # read up to memory: memory next
        return Fetched(rows, found[-1].id if found else after_id)

    def has_rows_after(self, after_id: int) -> bool:
        """Whether a committed row after `after_id` is still in the outbox."""
        return self._store.has_rows_after(after_id)

    def quarantine(self, row: BadRow) -> None:
        """Move a row aside at the next commit (once, however often it is read)."""
        if row.id not in self._quarantining:
            self._quarantining.add(row.id)
            self._batch.quarantine.append(row)
            self._changed.set()

    def claim_command(self, command_id: str, machine: str, now_s: float) -> bool:
        return self._store.claim_command(command_id, machine, now_s)

    async def close(self) -> None:
        """Commit what is pending and close the database."""
        await self.commit()
        self._store.close()
