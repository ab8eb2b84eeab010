"""Delivery: one asyncio task per webhook target, all in the notifier's own thread. A
target's oldest pending notification is POSTed until the receiver answers 2xx, with the
shared backoff between attempts; only then the next one (delivery in queue order). One
attempt, from connecting to the answer's head, is bounded as a whole by the target's
`timeout_s` (`asyncio.timeout`), so a hanging or trickling receiver delays its own
notifications and nothing else: the alarm loop only adds rows to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time

import httpx

from shopfloor.alarms.notify import message
from shopfloor.alarms.notify.queue import NotificationQueue, Queued
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.notifications import Webhook

log = logging.getLogger(__name__)

IDLE_S = 5.0
"""An idle sender looks at the queue this often even without a wake-up."""


class Sender:
    """One target's delivery loop (`run`, a task on the delivery thread's loop)."""

    def __init__(self, target: Webhook, secret: bytes, queue: NotificationQueue,
                 retry_max_s: float, dead_letter_after_s: float) -> None:
        self.target = target
        self._secret = secret
        self._queue = queue
        self._dead_after_s = dead_letter_after_s
        self._wake = asyncio.Event()
        self._backoff = Backoff(base_s=min(0.5, retry_max_s), max_s=retry_max_s)
        self._failures = FailureLog(log, f"webhook {target.id} ({target.url})")
        self.last_error = ""
        self.attempts_failed = 0

    @property
    def failing(self) -> bool:
        return self._failures.failing

    def wake(self) -> None:
        """On the delivery thread's loop: look at the queue now."""
        self._wake.set()

    async def run(self) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while True:
                try:
                    await self._next(client)
                except sqlite3.Error as exc:  # the queue file: retried, never fatal
                    self._failures.failure("notification queue: %s", exc)
                    await asyncio.sleep(self._backoff.next_delay())

    async def _next(self, client: httpx.AsyncClient) -> None:
        """Deliver the oldest pending notification, or wait for one."""
        self._wake.clear()
        queued = self._queue.head(self.target.id)
        if queued is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_S):
                    await self._wake.wait()
            return
        await self._deliver(client, queued)

    async def _deliver(self, client: httpx.AsyncClient, queued: Queued) -> None:
        error = await self._attempt(client, queued)
        now = time.time()
        if error is None:
            self._queue.delivered(queued.id, now)
            self._backoff.reset()
            self._failures.success()
            return
        self.attempts_failed += 1
        self.last_error = error
        self._queue.failed(queued.id, error)
        self._failures.failure("%s (attempt %d of %s)", error, queued.attempts + 1,
                               queued.notification.key)
        if queued.queued_at < now - self._dead_after_s:
            dead = self._queue.expire(self.target.id, now - self._dead_after_s, now)
            log.error("webhook %s: %d notification(s) undelivered for %.0f s are dead "
                      "letters (last error: %s)", self.target.id, dead, self._dead_after_s,
                      error)
            return
        await asyncio.sleep(self._backoff.next_delay())

    async def _attempt(self, client: httpx.AsyncClient, queued: Queued) -> str | None:
        """POST one notification; None on a 2xx answer, else what went wrong."""
        note = queued.notification
        headers = message.headers(self._secret, note.key, note.event, note.body,
                                  queued.attempts + 1, time.time())
        try:
            async with asyncio.timeout(self.target.timeout_s), client.stream(
                    "POST", self.target.url, content=note.body, headers=headers) as response:
                status = response.status_code
        except TimeoutError:
            return f"no answer within {self.target.timeout_s} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if 200 <= status < 300 else f"HTTP {status}"


class Delivery:
    """The notifier's delivery thread: an event loop running every target's Sender."""

    def __init__(self, senders: list[Sender]) -> None:
        self.senders = senders
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        self._ready.set()
        try:
            async with asyncio.TaskGroup() as group:
                for sender in self.senders:
                    group.create_task(sender.run(), name=f"webhook-{sender.target.id}")
        except asyncio.CancelledError:
            pass

    def wake(self, targets: set[str]) -> None:
        """From any thread: these targets have new notifications."""
        if self._loop is None:
            return
        for sender in self.senders:
            if sender.target.id in targets:
                self._loop.call_soon_threadsafe(sender.wake)

    def stop(self, timeout_s: float) -> None:
        """Cancel every sender (an attempt in flight ends there) and wait for the thread."""
        if self._loop is not None and self._main is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                self._loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(timeout_s)
