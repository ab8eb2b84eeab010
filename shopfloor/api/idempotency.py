"""Idempotency-Key handling: the first request with a key acts; a retry with the same key
and the same request gets the first answer (waiting for it if it is still running);
the same key with a different request is refused (409). Keys are scoped per API key and
kept for a TTL.

Every key within its TTL is held in memory (an asyncio future a concurrent retry waits
on), and finished answers are also written to an `AnswerFile` (SQLite) before the HTTP
answer leaves, so a retry after an API restart — crash, kill -9, upgrade — is replayed
from the file instead of acting on the machine a second time (the file's keys are loaded
back into memory at start). A key is never forgotten before its TTL, and one in flight
never: the store is bounded per API key instead (`capacity` keys each); an API key at
its bound is refused with 429 and `Retry-After` (when its oldest key expires), so one
client's flood of keys can neither evict another client's answers nor its own.

The SQLite calls are plain blocking calls on the event loop, on purpose: one indexed read
per key miss (~5 µs measured) and one insert per finished control action (~0.2 ms with
its fsync, synchronous=FULL, on the development machine). Control actions come at human
or maintenance-system rates, so a thread hop would cost more complexity than it saves,
and a read in `begin` that stays synchronous cannot race a concurrent retry."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopfloor.api.errors import ConfigError, Conflict, Invalid, TooManyRequests, Unavailable

log = logging.getLogger(__name__)
MAX_KEY_LENGTH = 200
PURGE_EVERY_S = 60.0
"""Expired rows are deleted at start and then at most this often (seconds)."""
FILE_NAME = "idempotency.sqlite"
Answer = tuple[int, dict[str, Any]]  # HTTP status, JSON body

_SCHEMA = """CREATE TABLE IF NOT EXISTS answers (
    owner TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL, body TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (owner, key))"""


@dataclass(slots=True)
class _Entry:
    """A key: its request's fingerprint, when it began (store clock), and the future of
    its answer (None: finished before a restart, the answer is in the file)."""

    fingerprint: str
    created: float
    answer: asyncio.Future[Answer] | None

    @property
    def in_flight(self) -> bool:
        return self.answer is not None and not self.answer.done()


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    fingerprint: str
    answer: Answer


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests "the same": method, path and the JSON body."""
    canonical = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise Invalid(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} printable characters",
                      "bad_idempotency_key")
    return key


class AnswerFile:
    """Finished answers in one SQLite table (WAL, synchronous=FULL: a row written is on
    disk before the answer is sent). `created` is wall-clock time (seconds since the
    epoch), the only clock that means something across a restart; rows older than `ttl_s`
    are ignored and deleted by `purge`."""

    def __init__(self, path: Path, ttl_s: float,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._ttl_s = ttl_s
        self._wall_clock = wall_clock
        self._db = sqlite3.connect(path, isolation_level=None)  # autocommit: one row each
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    @classmethod
    def open(cls, state_dir: Path, ttl_s: float,
             wall_clock: Callable[[], float] = time.time) -> AnswerFile:
        """The file in `state_dir` (created if missing). ConfigError with a one-line
        reason when the folder or the file cannot be created or written."""
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            answers = cls(state_dir / FILE_NAME, ttl_s, wall_clock)
            answers.purge()  # also proves the file is writable
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"api.state_dir {state_dir}: cannot keep Idempotency-Key "
                              f"answers there ({exc}); set api.state_dir or "
                              "SHOPFLOOR_API_STATE_DIR to a writable folder") from exc
        return answers

    def get(self, owner: str, key: str) -> StoredAnswer | None:
        row = self._db.execute(
            "SELECT fingerprint, status, body FROM answers"
            " WHERE owner = ? AND key = ? AND created >= ?",
            (owner, key, self._horizon())).fetchone()
        if row is None:
            return None
        return StoredAnswer(row[0], (int(row[1]), json.loads(row[2])))

    def put(self, owner: str, key: str, print_: str, answer: Answer) -> None:
        # REPLACE: an expired row for this key may not have been purged yet
        self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                         (owner, key, print_, answer[0], json.dumps(answer[1]),
                          self._wall_clock()))

    def keys(self) -> list[tuple[str, str, str, float]]:
        """(owner, key, fingerprint, age in seconds) of every answer within the TTL."""
        now = self._wall_clock()
        return [(owner, key, print_, now - created) for owner, key, print_, created in
                self._db.execute("SELECT owner, key, fingerprint, created FROM answers"
                                 " WHERE created >= ? ORDER BY created", (self._horizon(),))]

    def delete(self, owner: str, key: str) -> None:
        self._db.execute("DELETE FROM answers WHERE owner = ? AND key = ?", (owner, key))

    def purge(self) -> int:
        """Delete the rows older than the TTL; how many."""
        return self._db.execute("DELETE FROM answers WHERE created < ?",
                                (self._horizon(),)).rowcount

    def close(self) -> None:
        self._db.close()

    def _horizon(self) -> float:
        return self._wall_clock() - self._ttl_s


class IdempotencyStore:
    """Keys in memory (in flight and finished, per API key, oldest first) and, with
    `answers`, finished answers on disk. Without `answers` nothing survives a restart
    (tests of the memory part)."""

    def __init__(self, ttl_s: float, capacity: int = 10_000,
                 clock: Callable[[], float] = time.monotonic,
                 answers: AnswerFile | None = None) -> None:
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._clock = clock
        self._answers = answers
        self._owners: dict[str, OrderedDict[str, _Entry]] = {}
        self._purged_at = clock()
        if answers is not None:
            self._load(answers)

    def begin(self, owner: str, key: str, print_: str) -> tuple[bool, asyncio.Future[Answer]]:
        """(True, future to fulfil) for a new key; (False, the first request's future) for
        a retry, also one answered before a restart. Conflict when the key was used for a
        different request; TooManyRequests when the API key holds `capacity` keys."""
        self._expire()
        entries = self._owners.setdefault(owner, OrderedDict())
        loop = asyncio.get_running_loop()
        entry = entries.get(key)
        if entry is not None:
            _same_request(entry.fingerprint, print_)
            if entry.answer is not None:
                return False, entry.answer
        stored = self._stored(owner, key)
        if stored is not None:
            _same_request(stored.fingerprint, print_)
            replay: asyncio.Future[Answer] = loop.create_future()
            replay.set_result(stored.answer)
            return False, replay
        if entry is not None:  # in memory as answered, but the file lost it: act again
            del entries[key]
        if len(entries) >= self._capacity:
            raise TooManyRequests(
                f"this API key holds {self._capacity} Idempotency-Keys (kept "
                f"{self._ttl_s:g} s each); retry later", self._retry_after(entries))
        future: asyncio.Future[Answer] = loop.create_future()
        entries[key] = _Entry(print_, self._clock(), future)
        return True, future

    def finish(self, owner: str, key: str, answer: Answer, print_: str | None = None) -> None:
        """Record the answer: on disk first, then for the retries waiting in memory."""
        entries = self._owners.get(owner)
        entry = entries.get(key) if entries is not None else None
        if entry is not None and entry.answer is not None and entry.answer.done():
            return
        print_ = entry.fingerprint if entry is not None else print_
        if print_ is not None:
            self._save(owner, key, print_, answer)
        if entry is not None and entry.answer is not None:
            entry.answer.set_result(answer)

    def forget(self, owner: str, key: str, exc: BaseException) -> None:
        """The first request failed before acting: let a retry act; waiters get `exc`."""
        entry = self._owners.get(owner, OrderedDict()).pop(key, None)
        if self._answers is not None:
            try:
                self._answers.delete(owner, key)
            except sqlite3.Error as db_exc:
                log.error("Idempotency-Key %r not removed from %s: %s", key,
                          self._answers.path, db_exc)
        if entry is not None and entry.answer is not None and not entry.answer.done():
            entry.answer.set_exception(exc)
            entry.answer.exception()  # mark retrieved: no "never retrieved" warning

    def held(self, owner: str) -> int:
        """How many keys the API key `owner` holds (in flight and answered)."""
        return len(self._owners.get(owner, ()))

    def close(self) -> None:
        if self._answers is not None:
            self._answers.close()

    def _load(self, answers: AnswerFile) -> None:
        """The keys answered before a restart, oldest first (their answers stay on disk)."""
        try:
            rows = answers.keys()
        except sqlite3.Error as exc:
            raise ConfigError(f"{answers.path}: Idempotency-Key answers unreadable ({exc})"
                              ) from exc
        now = self._clock()
        for owner, key, print_, age_s in rows:
            entries = self._owners.setdefault(owner, OrderedDict())
            entries[key] = _Entry(print_, now - max(age_s, 0.0), None)

    def _retry_after(self, entries: OrderedDict[str, _Entry]) -> int:
        """Seconds until the API key's oldest finished key expires (at least 1)."""
        now = self._clock()
        oldest = next((e.created for e in entries.values() if not e.in_flight), now)
        return max(1, math.ceil(oldest + self._ttl_s - now))

    def _stored(self, owner: str, key: str) -> StoredAnswer | None:
        """The answer saved before (maybe before a restart). An unreadable file refuses
        the request (503): acting without knowing could act twice."""
        if self._answers is None:
            return None
        try:
            return self._answers.get(owner, key)
        except sqlite3.Error as exc:
            log.error("Idempotency-Key answers in %s unreadable: %s", self._answers.path, exc)
            raise Unavailable("Idempotency-Key store unavailable", "idempotency_unavailable"
                              ) from exc

    def _save(self, owner: str, key: str, print_: str, answer: Answer) -> None:
        """A failure is logged, not raised: the machine has acted, the client gets the
        answer; only a retry after a restart could then act again."""
        if self._answers is None:
            return
        try:
            self._answers.put(owner, key, print_, answer)
        except sqlite3.Error as exc:
            log.error("Idempotency-Key answer not saved to %s (a retry after a restart "
                      "would act again): %s", self._answers.path, exc)

    def _expire(self) -> None:
        """Drop keys past their TTL, oldest first; never one still in flight."""
        now = self._clock()
        horizon = now - self._ttl_s
        for entries in self._owners.values():
            while entries:
                first = next(iter(entries.values()))
                if first.created >= horizon or first.in_flight:
                    break
                entries.popitem(last=False)
        if self._answers is not None and now - self._purged_at >= PURGE_EVERY_S:
            self._purged_at = now
            try:
                self._answers.purge()
            except sqlite3.Error as exc:
                log.warning("expired Idempotency-Key answers not deleted: %s", exc)


def _same_request(stored: str, print_: str) -> None:
    if stored != print_:
        raise Conflict("Idempotency-Key already used for a different request",
                       "idempotency_key_reused")
