"""The agent's SQLite database (WAL): the outbox of messages waiting for a PUBACK, the
sequence number of every machine stream, the last state per machine, and the ids of
commands already executed. Synchronous; the `Outbox` runs it on one worker thread.

One `commit()` is one transaction: new messages, the streams' sequence numbers and the
PUBACKed deletions together (group commit), so a sample and its sequence number are
durable together or not at all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from shopfloor.edge.errors import OutboxError
from shopfloor.shared.enums import QueueFullPolicy

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the publisher's cursor relies on it
    sample INTEGER NOT NULL,               -- 1 = telemetry sample (counts toward max_samples)
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (machine TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS states (machine TEXT PRIMARY KEY, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY, machine TEXT NOT NULL, received_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Message:
    """One message to publish (QoS 1). `sample` marks telemetry."""

    topic: str
    payload: bytes
    retain: bool = False
    sample: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    message: Message


@dataclass(slots=True)
class Batch:
    """What one group commit writes."""

    messages: list[Message] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)
    states: dict[str, bytes] = field(default_factory=dict)
    acked_samples: list[int] = field(default_factory=list)
    acked_other: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.messages or self.seqs or self.states or self.acked_samples or self.acked_other
        )


class Store:
    """The SQLite file. `samples` is the number of telemetry rows held."""

    def __init__(self, path: Path, max_samples: int, when_full: QueueFullPolicy) -> None:
        self.path = path
        self.max_samples = max_samples
        self.when_full = when_full
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a committed transaction survives a process crash (kill -9);
            # only an OS crash / power loss can lose the last few commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints (the only fsyncs) run from `checkpoint()` on a worker thread, so a
            # commit on the event loop never waits for the disk.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.execute("PRAGMA busy_timeout=200")
            self._db.executescript(SCHEMA)
            self.samples = self._count_samples()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open {path}: {exc}") from exc

    def _count_samples(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE sample = 1").fetchone()[0])

    def commit(self, batch: Batch, sent_upto: int = 0) -> int:
        """Write one batch in one transaction; returns the number of samples dropped
        because the queue was full. Rows up to `sent_upto` were handed to the broker
        already: drop_oldest never drops those (they would arrive anyway)."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            self.samples -= self._delete(batch.acked_samples)
            self._delete(batch.acked_other)
            dropped = self._insert(batch.messages, sent_upto)
            db.executemany(
                "INSERT INTO streams(machine, seq) VALUES (?, ?) "
                "ON CONFLICT(machine) DO UPDATE SET seq = excluded.seq",
                batch.seqs.items(),
            )
            db.executemany(
                "INSERT OR REPLACE INTO states(machine, payload) VALUES (?, ?)",
                batch.states.items(),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self.samples = self._count_samples()
            raise OutboxError(f"commit to {self.path} failed: {exc}") from exc
        return dropped

    def _delete(self, ids: list[int]) -> int:
        if not ids:
            return 0
        cur = self._db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in ids))
        return max(cur.rowcount, 0)

    def _insert(self, messages: list[Message], sent_upto: int) -> int:
        """Insert, applying the queue-full policy to samples; returns samples dropped."""
        samples = [m for m in messages if m.sample]
        overflow = max(0, self.samples + len(samples) - self.max_samples)
        removed, new = 0, len(samples)
        if overflow and self.when_full is QueueFullPolicy.DROP_NEWEST:
            samples = samples[: max(0, new - overflow)]
        elif overflow:
            removed = self._drop_oldest(overflow, sent_upto)
            samples = samples[overflow - removed :]  # the batch alone overflows: its oldest go
        kept = {id(m) for m in samples}
        rows = [
            (int(m.sample), m.topic, m.payload, int(m.retain))
            for m in messages
            if not m.sample or id(m) in kept
        ]
        self._db.executemany(
            "INSERT INTO outbox(sample, topic, payload, retain) VALUES (?, ?, ?, ?)", rows
        )
        self.samples += len(samples)
        return removed + new - len(samples)

    def _drop_oldest(self, count: int, sent_upto: int) -> int:
        """Delete up to `count` of the oldest samples not yet sent; returns how many went."""
        cur = self._db.execute(
            "DELETE FROM outbox WHERE id IN "
            "(SELECT id FROM outbox WHERE sample = 1 AND id > ? ORDER BY id LIMIT ?)",
            (sent_upto, count),
        )
        removed = max(cur.rowcount, 0)
        self.samples -= removed
        return removed

    def fetch(self, after_id: int, limit: int) -> list[Row]:
        """Messages in queue order with id > after_id."""
        cur = self._db.execute(
            "SELECT id, topic, payload, retain, sample FROM outbox"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [Row(i, Message(t, bytes(p), bool(r), bool(s))) for i, t, p, r, s in cur]

    def seqs(self) -> dict[str, int]:
        """Last sequence number used per machine stream."""
        return {m: int(s) for m, s in self._db.execute("SELECT machine, seq FROM streams")}

    def states(self) -> dict[str, bytes]:
        return {m: bytes(p) for m, p in self._db.execute("SELECT machine, payload FROM states")}

    def claim_command(self, command_id: str, machine: str, now_s: float) -> bool:
        """Record a command id; False when it was seen before (execute at most once)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO commands(id, machine, received_at) VALUES (?, ?, ?)",
            (command_id, machine, now_s),
        )
        return cur.rowcount == 1

    def forget_commands(self, before_s: float) -> None:
        self._db.execute("DELETE FROM commands WHERE received_at < ?", (before_s,))

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (PASSIVE: never blocks writers). Runs on
        its own connection, so it may be called from another thread."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def close(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
