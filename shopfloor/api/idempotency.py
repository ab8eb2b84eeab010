"""Idempotency-Key handling: the first request with a key acts; a retry with the same key
and the same request gets the first answer (waiting for it if it is still running);
the same key with a different request is refused (409). Keys are scoped per API key and
kept for a TTL, at most `capacity` of them (oldest dropped first)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shopfloor.api.errors import Conflict, Invalid

MAX_KEY_LENGTH = 200
Answer = tuple[int, dict[str, Any]]  # HTTP status, JSON body


@dataclass(slots=True)
class _Entry:
    fingerprint: str
    created: float
    answer: asyncio.Future[Answer]


def fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests "the same": method, path and the JSON body."""
    canonical = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise Invalid(f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} printable characters",
                      "bad_idempotency_key")
    return key


class IdempotencyStore:
    def __init__(self, ttl_s: float, capacity: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def begin(self, owner: str, key: str, print_: str) -> tuple[bool, asyncio.Future[Answer]]:
        """(True, future to fulfil) for a new key; (False, the first request's future) for
        a retry. Conflict when the key was used for a different request."""
        self._expire()
        entry = self._entries.get((owner, key))
        if entry is not None:
            if entry.fingerprint != print_:
                raise Conflict("Idempotency-Key already used for a different request",
                               "idempotency_key_reused")
            return False, entry.answer
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._entries[(owner, key)] = _Entry(print_, self._clock(), future)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return True, future

    def finish(self, owner: str, key: str, answer: Answer) -> None:
        entry = self._entries.get((owner, key))
        if entry is not None and not entry.answer.done():
            entry.answer.set_result(answer)

    def forget(self, owner: str, key: str, exc: BaseException) -> None:
        """The first request failed before acting: let a retry act; waiters get `exc`."""
        entry = self._entries.pop((owner, key), None)
        if entry is not None and not entry.answer.done():
            entry.answer.set_exception(exc)
            entry.answer.exception()  # mark retrieved: no "never retrieved" warning

    def _expire(self) -> None:
        horizon = self._clock() - self._ttl_s
        while self._entries:
            first = next(iter(self._entries.values()))
            if first.created >= horizon:
                break
            self._entries.popitem(last=False)
