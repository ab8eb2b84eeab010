"""The agent's SQLite database (WAL): the outbox of messages waiting for a PUBACK, the
sequence number and latest sample time of every machine stream and the stream epoch,
the last state per machine, the ids of commands already executed, and the quarantine of
rows that cannot be published. Synchronous, used from the event loop thread (see `Outbox`).

One `commit()` is one transaction: new messages, the streams' sequence numbers and
latest sample times, and the PUBACKed deletions together (group commit), so a sample,
its sequence number and its time are durable together or not at all. It returns the
ids of the new rows (`Committed`), so that the publisher can take them from memory
instead of reading them back.

Opening checks the file (`PRAGMA quick_check`) and reads everything the agent needs at
start, so that a damaged or foreign file stops the start with one `OutboxError` line
instead of failing later. A file without an epoch (new, emptied, replaced) gets a new
one: the collector then starts fresh seq accounting (docs/mqtt-contract.md).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from shopfloor.edge.errors import OutboxError
from shopfloor.shared.enums import QueueFullPolicy

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the publisher's cursor relies on it
    sample INTEGER NOT NULL,               -- 1 = telemetry sample (counts toward max_samples)
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    machine TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,                  -- the last sequence number used
    latest_ms INTEGER                      -- the latest sample time (ms since 1970); NULL: unknown
);
CREATE TABLE IF NOT EXISTS states (machine TEXT PRIMARY KEY, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY, machine TEXT NOT NULL, received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (      -- outbox rows that cannot be published
    id INTEGER PRIMARY KEY,                  -- the row's id in the outbox
    sample, topic, payload, retain,          -- as found (any type: that is the problem)
    reason TEXT NOT NULL,
    quarantined_at REAL NOT NULL
);
"""
EPOCH_KEY = "epoch"
MIGRATIONS = (("streams", "latest_ms", "ALTER TABLE streams ADD COLUMN latest_ms INTEGER"),)
"""(table, column, statement): columns added since the first schema, added to an older
file at open (its rows get NULL)."""
LAST_ID = 2**63 - 1
"""SQLite's largest rowid (no row has a higher id)."""
INSERT = "INSERT INTO outbox(topic, payload, retain, sample) VALUES (?, ?, ?, ?)"
"""Its columns in `Message`'s field order: a message binds as it is."""


class Message(NamedTuple):
    """One message to publish (QoS 1). `sample` marks telemetry. A named tuple: one is
    made per sample (half the cost of a frozen dataclass), and it binds to `INSERT` as
    it is."""

    topic: str
    payload: bytes
    retain: bool = False
    sample: bool = False


class Row(NamedTuple):
    """A committed message and its row id (the queue order): unpacks like the
    (id, message) pairs the publisher takes from memory."""

    id: int
    message: Message


@dataclass(frozen=True, slots=True)
class Committed:
    """What one commit wrote: the samples the queue-full policy dropped, and the new
    rows — `messages` in queue order, with the ids `after_id` + 1, + 2, ... (`after_id`
    None: the ids could not be established, read the rows back)."""

    dropped: int
    after_id: int | None
    messages: list[Message]


@dataclass(frozen=True, slots=True)
class BadRow:
    """An outbox row that cannot be published (wrong types, an invalid topic)."""

    id: int
    reason: str


@dataclass(slots=True)
class Batch:
    """What one group commit writes."""

    messages: list[Message] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)
    states: dict[str, bytes] = field(default_factory=dict)
    acked_samples: list[int] = field(default_factory=list)
    acked_other: list[int] = field(default_factory=list)
    quarantine: list[BadRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.messages
            or self.seqs
            or self.states
            or self.acked_samples
            or self.acked_other
            or self.quarantine
        )

    def bookkeeping(self) -> Batch:
        """Everything but the new messages: what a commit can still write when the new
        messages do not fit (deletions free space; seqs and states update rows)."""
        return Batch(
            seqs=self.seqs,
            states=self.states,
            acked_samples=self.acked_samples,
            acked_other=self.acked_other,
            quarantine=self.quarantine,
        )


class Store:
    """The SQLite file. `samples` is the number of telemetry rows held; `epoch` names
    the file's streams; `last_seqs` and `last_states` are what it held at open.
    `latest_ms`: each machine stream's latest sample time (ms since 1970), read at open,
    raised by the streams as they stamp samples (stream.py) and written with the
    stream's seq by every commit that carries one.
    `max_bytes` caps the file (SQLite's max_page_count: beyond it a commit fails like
    on a full disk)."""

    def __init__(
        self,
        path: Path,
        max_samples: int,
        when_full: QueueFullPolicy,
        max_bytes: int | None = None,
    ) -> None:
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
            self._check()
            self._db.executescript(SCHEMA)
            self._migrate()
            if max_bytes is not None:
                self._limit(max_bytes)
            self.epoch = self._epoch()
            self.samples = self._count_samples()
            self.last_seqs = self.seqs()
            self.latest_ms = self.latest_times()
            self.last_states = self.states()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(
                f"cannot open {path}: {exc} (move the file aside to start a new outbox:"
                " its unsent samples are then lost, and a new stream epoch begins)"
            ) from exc

    def _check(self) -> None:
        """Refuse a damaged file at open (not at the first read of a damaged page)."""
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("damaged: " + "; ".join(problems))

    def _migrate(self) -> None:
        """Add the columns an older file lacks."""
        for table, column, statement in MIGRATIONS:
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                self._db.execute(statement)

    def _limit(self, max_bytes: int) -> None:
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._db.execute(f"PRAGMA max_page_count = {max(1, math.floor(max_bytes / page_size))}")

    def _epoch(self) -> int:
        """The file's stream epoch; a new one (ms since 1970, an opaque id) if it has none."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (EPOCH_KEY,)).fetchone()
        if row is not None:
            return int(row[0])
        epoch = time.time_ns() // 1_000_000
        self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (EPOCH_KEY, epoch))
        return epoch

    def _count_samples(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE sample = 1").fetchone()[0])

    def commit(self, batch: Batch, sent_upto: int = 0) -> Committed:
        """Write one batch in one transaction; returns what it wrote (the samples
        dropped because the queue was full, the new rows' ids). Rows up to `sent_upto`
        were handed to the broker already: drop_oldest never drops those (they would
        arrive anyway)."""
        db = self._db
        samples_before = self.samples
        try:
            db.execute("BEGIN IMMEDIATE")
            self.samples -= self._delete(batch.acked_samples)
            self._delete(batch.acked_other)
            self._quarantine(batch.quarantine)
            committed = self._insert(batch.messages, sent_upto)
            db.executemany(
                "INSERT INTO streams(machine, seq, latest_ms) VALUES (?, ?, ?) "
                "ON CONFLICT(machine) DO UPDATE SET seq = excluded.seq, latest_ms = "
                "max(ifnull(latest_ms, excluded.latest_ms), ifnull(excluded.latest_ms, latest_ms))",
                [(m, seq, self.latest_ms.get(m)) for m, seq in batch.seqs.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO states(machine, payload) VALUES (?, ?)",
                batch.states.items(),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.samples = samples_before  # the rollback undoes the transaction's changes
            with contextlib.suppress(sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
            raise OutboxError(f"commit to {self.path} failed: {exc}") from exc
        return committed

    def _quarantine(self, bad: list[BadRow]) -> None:
        """Move rows that cannot be published aside, as they are, with the reason."""
        if not bad:
            return
        now = time.time()
        self._db.executemany(
            "INSERT OR REPLACE INTO quarantine(id, sample, topic, payload, retain, reason,"
            " quarantined_at) SELECT id, sample, topic, payload, retain, ?, ? FROM outbox"
            " WHERE id = ?",
            ((b.reason, now, b.id) for b in bad),
        )
        self._delete([b.id for b in bad])
        self.samples = self._count_samples()

    def _delete(self, ids: list[int]) -> int:
        """Delete these rows; returns how many there were. PUBACKs come mostly in queue
        order, so the ids form a few runs of consecutive ids: one statement per run."""
        if not ids:
            return 0
        cur = self._db.executemany(
            "DELETE FROM outbox WHERE id BETWEEN ? AND ?", _runs(sorted(set(ids)))
        )
        return max(cur.rowcount, 0)

    def _insert(self, messages: list[Message], sent_upto: int) -> Committed:
        """Insert, applying the queue-full policy to samples."""
        samples = [m for m in messages if m.sample]
        overflow = max(0, self.samples + len(samples) - self.max_samples)
        removed, new = 0, len(samples)
        if overflow and self.when_full is QueueFullPolicy.DROP_NEWEST:
            samples = samples[: max(0, new - overflow)]
        elif overflow:
            removed = self._drop_oldest(overflow, sent_upto)
            samples = samples[overflow - removed :]  # the batch alone overflows: its oldest go
        if len(samples) < new:
            kept = {id(m) for m in samples}
            messages = [m for m in messages if not m.sample or id(m) in kept]
        after_id = self._insert_rows(messages) if messages else None
        self.samples += len(samples)
        return Committed(removed + new - len(samples), after_id, messages)

    def _insert_rows(self, messages: list[Message]) -> int | None:
        """Insert the rows; returns the id before the first (they are numbered on from
        it), None if that cannot be shown. AUTOINCREMENT gives each new row an id above
        every id the table ever had (sqlite_sequence before the insert), increasing, so
        if the last is exactly len(messages) above it, the ids are consecutive."""
        db = self._db
        found = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        db.executemany(INSERT, messages)
        last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
        before = int(found[0]) if found is not None else 0
        return before if last - before == len(messages) else None

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

    def fetch(self, after_id: int, limit: int, upto_id: int = LAST_ID) -> list[Row | BadRow]:
        """Rows in queue order with after_id < id <= upto_id; a row that cannot be
        published comes back as a `BadRow` (to be quarantined), never as an exception."""
        cur = self._db.execute(
            "SELECT id, topic, payload, retain, sample FROM outbox"
            " WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (after_id, upto_id, limit),
        )
        return [_row(*values) for values in cur]

    def has_rows_after(self, after_id: int) -> bool:
        """Whether any row has an id above `after_id`."""
        found = self._db.execute("SELECT 1 FROM outbox WHERE id > ? LIMIT 1", (after_id,))
        return found.fetchone() is not None

    def seqs(self) -> dict[str, int]:
        """Last sequence number used per machine stream."""
        return {m: int(s) for m, s in self._db.execute("SELECT machine, seq FROM streams")}

    def latest_times(self) -> dict[str, int]:
        """The latest sample time (ms since 1970) per machine stream, where known."""
        return {m: int(t) for m, t in self._db.execute(
            "SELECT machine, latest_ms FROM streams WHERE latest_ms IS NOT NULL")}

    def states(self) -> dict[str, bytes]:
        return {m: bytes(p) for m, p in self._db.execute("SELECT machine, payload FROM states")}

    def claim_command(self, command_id: str, machine: str, now_s: float) -> bool:
        """Record a command id; False when it was seen before (execute at most once).
        OutboxError when it cannot be recorded (then it must not be executed)."""
        try:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO commands(id, machine, received_at) VALUES (?, ?, ?)",
                (command_id, machine, now_s),
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot record command {command_id!r}: {exc}") from exc
        return cur.rowcount == 1

    def forget_commands(self, before_s: float) -> None:
        """Forget command ids older than `before_s`; on a full disk they stay (logged)."""
        try:
            self._db.execute("DELETE FROM commands WHERE received_at < ?", (before_s,))
        except sqlite3.Error as exc:
            log.warning("cannot forget old command ids in %s: %s", self.path, exc)

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (PASSIVE: never blocks writers). Runs on
        its own connection, so it may be called from another thread."""
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # a full disk: the WAL stays for the next open
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct ids as (first, last) runs of consecutive ids."""
    runs: list[tuple[int, int]] = []
    first = last = ids[0]
    for i in ids[1:]:
        if i != last + 1:
            runs.append((first, last))
            first = i
        last = i
    runs.append((first, last))
    return runs


def _row(
    row_id: int, topic: object, payload: object, retain: object, sample: object
) -> Row | BadRow:
    """A row as a `Row`, or a `BadRow` saying why it cannot be published."""
    # wildcards and NUL: not a topic to publish to (three `in` tests: a generator per row
    # was a few per cent of the agent's CPU)
    if type(topic) is not str or not topic or "+" in topic or "#" in topic or "\0" in topic:
        return BadRow(row_id, f"topic {_show(topic)} is not a topic to publish to")
    if type(payload) is not bytes:
        return BadRow(row_id, f"payload is {type(payload).__name__}, not a blob")
    if type(retain) is not int or type(sample) is not int or {retain, sample} - {0, 1}:
        return BadRow(row_id, f"retain {_show(retain)} / sample {_show(sample)} are not 0 or 1")
    return Row(row_id, Message(topic, payload, bool(retain), bool(sample)))


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
