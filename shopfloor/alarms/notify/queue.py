"""The durable notification queue: one SQLite file (WAL) holding every notification
until its receiver answered 2xx, and the escalations waiting for their time.

- A notification is one row per (target, key); adding the same key for the same target
  again changes nothing (UNIQUE), so a transition the engine computes again after a
  restart is not sent twice. Delivered rows keep their key (body emptied) for
  `keep_delivered_s`, for the same reason.
- Rows of one target and one alarm instance leave `pending` in id order (`ready`
  offers only an instance's oldest): delivered (2xx) or, failing past
  `dead_letter_after_s`, dead (kept, counted, with the last error).
- `max_bytes` caps the file (SQLite's max_page_count). When an add does not fit, room
  is made in this order: delivered keys, the oldest dead letters, then the oldest
  pending notifications (dropped, counted, logged): the newest alarms win.

Used from two threads (the alarm loop adds, the senders deliver): one connection,
behind a lock; every operation is one short transaction.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from shopfloor.alarms.errors import NotifyError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the order of delivery
    target TEXT NOT NULL,
    instance TEXT NOT NULL,                -- machine:rule: the unit of ordering
    key TEXT NOT NULL,
    event TEXT NOT NULL,
    body BLOB NOT NULL,
    queued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'pending',  -- pending | delivered | dead
    done_at REAL,
    UNIQUE (target, key)
);
CREATE INDEX IF NOT EXISTS by_state ON notifications (state, target, instance, id);
CREATE TABLE IF NOT EXISTS escalations (
    machine TEXT NOT NULL,
    rule TEXT NOT NULL,
    idx INTEGER NOT NULL,                  -- index in notifications.escalations
    raised_at REAL NOT NULL,
    due_at REAL NOT NULL,
    PRIMARY KEY (machine, rule, idx)
);
"""
ROOM_CHUNK = 100
"""Rows freed at a time when an add does not fit."""


class RowState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Notification:
    target: str
    instance: str
    """`machine:rule`: one instance's notifications are delivered in order."""
    key: str
    event: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Queued:
    id: int
    notification: Notification
    queued_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class Pending:
    """An escalation waiting for `due_at` (event time, s)."""

    machine: str
    rule: str
    index: int
    raised_at: float
    due_at: float


class NotificationQueue:
    def __init__(self, path: Path, max_bytes: int, keep_delivered_s: float) -> None:
        self.path = path
        self.keep_delivered_s = keep_delivered_s
        self.dropped = 0
        """Pending notifications dropped to make room (since start)."""
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # survives a kill -9
            self._db.execute("PRAGMA busy_timeout=2000")  # `shopfloor alarm-webhooks` too
            self._db.executescript(SCHEMA)
            page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
            self._db.execute(f"PRAGMA max_page_count = {max(1, math.floor(max_bytes / page_size))}")
        except (sqlite3.Error, OSError) as exc:
            raise NotifyError(f"cannot open the notification queue {path}: {exc} (move "
                              "the file aside to start an empty queue)") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    def add(self, notifications: Sequence[Notification], now: float,
            start: Sequence[Pending] = (), cancel: Sequence[tuple[str, str]] = (),
            finish: Sequence[Pending] = ()) -> None:
        """Queue notifications, start escalations, cancel those of (machine, rule) and
        forget `finish`ed ones, in one transaction. A full file makes room (see the
        module doc) and tries again; NotifyError if it cannot."""
        for _ in range(10_000):
            try:
                with self._transaction() as db:
                    db.executemany(
                        "INSERT OR IGNORE INTO notifications (target, instance, key, event,"
                        " body, queued_at) VALUES (?, ?, ?, ?, ?, ?)",
                        [(n.target, n.instance, n.key, n.event, n.body, now)
                         for n in notifications])
                    db.executemany("DELETE FROM escalations WHERE machine = ? AND rule = ?",
                                   cancel)
                    db.executemany(
                        "INSERT OR IGNORE INTO escalations VALUES (?, ?, ?, ?, ?)",
                        [(p.machine, p.rule, p.index, p.raised_at, p.due_at) for p in start])
                    db.executemany(
                        "DELETE FROM escalations WHERE machine = ? AND rule = ? AND idx = ?",
                        [(p.machine, p.rule, p.index) for p in finish])
                return
            except sqlite3.Error as exc:
                if "full" not in str(exc) or not self._make_room():
                    raise NotifyError(f"cannot queue {len(notifications)} notification(s)"
                                      f" in {self.path}: {exc}") from exc

    def _make_room(self) -> bool:
        """Free some rows; False when there is nothing left to free."""
        order = ((RowState.DELIVERED, False), (RowState.DEAD, False),
                 (RowState.PENDING, True))
        with self._lock:
            for state, counted in order:
                cur = self._db.execute(
                    "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
                    " WHERE state = ? ORDER BY id LIMIT ?)", (state, ROOM_CHUNK))
                if cur.rowcount > 0:
                    if counted:
                        self.dropped += cur.rowcount
                        log.error("notification queue %s full: dropped the %d oldest "
                                  "undelivered notification(s)", self.path, cur.rowcount)
                    return True
        return False

    def ready(self, target: str, limit: int, busy: frozenset[int] = frozenset()
              ) -> list[Queued]:
        """Up to `limit` of the target's notifications that may go now: the oldest pending
        one of each alarm instance, in queue order, leaving out the `busy` row ids
        (being delivered; their instances' later rows wait behind them)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, target, instance, key, event, body, queued_at, attempts"
                " FROM notifications WHERE id IN (SELECT MIN(id) FROM notifications"
                " WHERE state = 'pending' AND target = ? GROUP BY instance)"
                " ORDER BY id LIMIT ?", (target, limit + len(busy))).fetchall()
        return [Queued(row_id, Notification(target, instance, key, event, bytes(body)),
                       queued_at, attempts)
                for row_id, target, instance, key, event, body, queued_at, attempts in rows
                if row_id not in busy][:limit]

    def delivered(self, row_id: int, now: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE notifications SET state = 'delivered', body = x'',"
                       " attempts = attempts + 1, done_at = ? WHERE id = ?", (now, row_id))
            db.execute("DELETE FROM notifications WHERE state = 'delivered' AND done_at < ?",
                       (now - self.keep_delivered_s,))

    def failed(self, row_id: int, error: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE notifications SET attempts = attempts + 1, last_error = ?"
                       " WHERE id = ?", (error[:500], row_id))

    def dead(self, row_id: int, now: float, error: str) -> None:
        """A notification whose attempt failed with `error` past its time: a dead letter."""
        with self._transaction() as db:
            db.execute("UPDATE notifications SET state = 'dead', done_at = ?,"
                       " attempts = attempts + 1, last_error = ? WHERE id = ?",
                       (now, error[:500], row_id))

    def requeue_dead(self, target: str | None, now: float) -> int:
        """Dead letters (of one target, or all) back to pending, as if queued `now`;
        returns how many. They keep their place before their instances' later rows."""
        with self._transaction() as db:
            cur = db.execute("UPDATE notifications SET state = 'pending', queued_at = ?,"
                             " done_at = NULL WHERE state = 'dead'"
                             " AND (? IS NULL OR target = ?)", (now, target, target))
        return max(cur.rowcount, 0)

    def dead_letters(self, limit: int) -> list[tuple[str, str, int, str]]:
        """(target, key, attempts, last error) of the oldest dead letters."""
        with self._lock:
            return self._db.execute(
                "SELECT target, key, attempts, last_error FROM notifications"
                " WHERE state = 'dead' ORDER BY id LIMIT ?", (limit,)).fetchall()

    def counts(self) -> dict[tuple[str, RowState], int]:
        """Rows per (target, state)."""
        with self._lock:
            rows = self._db.execute("SELECT target, state, COUNT(*) FROM notifications"
                                    " GROUP BY target, state").fetchall()
        return {(target, RowState(state)): n for target, state, n in rows}

    def due(self, now: float) -> list[Pending]:
        with self._lock:
            rows = self._db.execute("SELECT machine, rule, idx, raised_at, due_at FROM"
                                    " escalations WHERE due_at <= ? ORDER BY due_at",
                                    (now,)).fetchall()
        return [Pending(*row) for row in rows]

    def escalating(self) -> set[tuple[str, str]]:
        """(machine, rule) of every instance with an escalation waiting."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT machine, rule FROM escalations")
            return {(m, r) for m, r in rows}

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
