"""Command results handed from the MQTT link's thread to the event loop, bounded: a flood
of results (forged or not) costs the loop a fixed amount of work per message and at most
`capacity` waiting results; more are dropped and counted, never queued without limit.
A result for a command that is waiting for it (`is_pending`) is never dropped and goes
first: those are as many as the commands in flight. The loop is woken once per batch
(not once per message) and handles at most `batch` results per turn, so HTTP requests
keep being served during a flood."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from shopfloor.api.commands import Dropped


class Result(Protocol):
    """A command's answer (`CommandResult`, `AlarmCommandResult`): it names its command."""

    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=Result)
CAPACITY = 10_000
BATCH = 200


class ResultInbox(Generic[R]):
    """Results of one kind with the line and machine of their topic (empty for the
    site-level alarm action results)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handle: Callable[[R, str,
                 str], None], on_drop: Callable[[str], None],
                 is_pending: Callable[[str], bool], capacity: int = CAPACITY,
                 batch: int = BATCH) -> None:
        self._loop = loop
        self._is_pending = is_pending
        self._handle = handle
        self._on_drop = on_drop
        self._capacity = capacity
        self._batch = batch
        self._items: deque[tuple[R, str, str]] = deque()
        self._urgent: deque[tuple[R, str, str]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def put(self, result: R, line: str, machine: str) -> None:
        """From any thread: queue one result, or drop it (counted) when full."""
        urgent = self._is_pending(result.id)
        with self._lock:
            full = not urgent and len(self._items) >= self._capacity
            if not full:
                (self._urgent if urgent else self._items).append((result, line, machine))
                wake, self._scheduled = not self._scheduled, True
        if full:
            self._on_drop(Dropped.OVERFLOW)
        elif wake:
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            batch = list(self._urgent)
            self._urgent.clear()
            batch += [self._items.popleft() for _ in range(min(self._batch, len(self._items)))]
            more = bool(self._items)
            self._scheduled = more
        for result, line, machine in batch:
            self._handle(result, line, machine)
        if more:  # the rest on a later turn: requests waiting on the loop go first
            self._loop.call_soon(self._drain)
