"""Delivery: one asyncio task per webhook target, all in the notifier's own thread. Each
target sends up to `max_in_flight` notifications at once, of different alarm instances;
each is POSTed until the receiver answers 2xx, with the shared backoff between
attempts, and only then may the same instance's next one go (per instance in order).
One attempt, from connecting to the answer's head, is bounded as a whole by the
target's `timeout_s` (`asyncio.timeout`), so a hanging or trickling receiver delays its
own notifications and nothing else: the alarm loop only adds rows to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
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
    """One target's delivery (`run`, a task on the delivery thread's loop): up to
    `max_in_flight` notifications at once, each of a different alarm instance, each
    retried until delivered or dead."""

    def __init__(self, target: Webhook, secret: bytes, queue: NotificationQueue,
                 retry_max_s: float, dead_letter_after_s: float) -> None:
        self.target = target
        self._secret = secret
        self._queue = queue
        self._retry_max_s = retry_max_s
        self._dead_after_s = dead_letter_after_s
        self._wake = asyncio.Event()
        self._busy: set[int] = set()
        self._failures = FailureLog(log, f"webhook {target.id} ({target.url})")
        self.last_error = ""
        self.attempts_failed = 0

    @property
    def failing(self) -> bool:
        return self._failures.failing

    def wake(self) -> None:
        """On the delivery thread's loop: look at the queue now."""
        self._wake.set()

    def _backoff(self) -> Backoff:
        return Backoff(base_s=min(0.5, self._retry_max_s), max_s=self._retry_max_s)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.target.max_in_flight)
        async with httpx.AsyncClient(follow_redirects=False, limits=limits) as client, \
                asyncio.TaskGroup() as group:
            backoff = self._backoff()
            while True:
                self._wake.clear()
                try:
                    for queued in self._queue.ready(
                            self.target.id, self.target.max_in_flight - len(self._busy),
                            frozenset(self._busy)):
                        self._busy.add(queued.id)
                        group.create_task(self._deliver(client, queued))
                    backoff.reset()
                except sqlite3.Error as exc:  # the queue file: retried, never fatal
                    self._failures.failure("notification queue: %s", exc)
                    await asyncio.sleep(backoff.next_delay())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_S):
                        await self._wake.wait()

    async def _deliver(self, client: httpx.AsyncClient, queued: Queued) -> None:
        """Attempt one notification until it is delivered or dead."""
        backoff = self._backoff()
        attempts = queued.attempts
        try:
            while (asked_s := await self._supervised(client, queued, attempts)) is not None:
                attempts += 1
                await asyncio.sleep(max(backoff.next_delay(), min(asked_s, self._retry_max_s)))
        finally:
            self._busy.discard(queued.id)
            self._wake.set()

    async def _supervised(self, client: httpx.AsyncClient, queued: Queued,
                          attempts: int) -> float | None:
        """`_settled`, where an unexpected error (a bug) is logged and the notification
        tried again, instead of ending every delivery of the notifier's task group."""
        try:
            return await self._settled(client, queued, attempts)
        except Exception:
            log.exception("webhook %s: delivering %s failed unexpectedly; trying again",
                          self.target.id, queued.notification.key)
            return 0.0

    async def _settled(self, client: httpx.AsyncClient, queued: Queued,
                       attempts: int) -> float | None:
        """One attempt; None when the notification is delivered or now a dead letter,
        else the wait the receiver asked for (Retry-After, s; 0 when it did not)."""
        error, asked_s = await self._attempt(client, queued, attempts + 1)
        now = time.time()
        try:
            if error is None:
                self._queue.delivered(queued.id, now)
                self._failures.success()
                return None
            self.attempts_failed += 1
            self.last_error = error
            self._failures.failure("%s (attempt %d of %s)", error, attempts + 1,
                                   queued.notification.key)
            if queued.queued_at < now - self._dead_after_s:
                self._queue.dead(queued.id, now, error)
                log.error("webhook %s: %s undelivered for %.0f s is a dead letter (last "
                          "error: %s)", self.target.id, queued.notification.key,
                          now - queued.queued_at, error)
                return None
            self._queue.failed(queued.id, error)
        except sqlite3.Error as exc:  # the queue file: this notification is tried again
            self._failures.failure("notification queue: %s", exc)
        return asked_s

    async def _attempt(self, client: httpx.AsyncClient, queued: Queued,
                       attempt: int) -> tuple[str | None, float]:
        """POST one notification: (None on a 2xx answer, else what went wrong; the
        receiver's Retry-After in seconds, 0 without one)."""
        note = queued.notification
        headers = message.headers(self._secret, note.key, note.event, note.body, attempt,
                                  time.time())
        try:
            async with asyncio.timeout(self.target.timeout_s), client.stream(
                    "POST", self.target.url, content=note.body, headers=headers) as response:
                status = response.status_code
                asked_s = retry_after_s(response.headers.get("Retry-After"), time.time())
        except TimeoutError:
            return f"no answer within {self.target.timeout_s} s", 0.0
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}", 0.0
        return (None if 200 <= status < 300 else f"HTTP {status}"), asked_s


def retry_after_s(value: str | None, now: float) -> float:
    """A Retry-After header (seconds, or an HTTP date) as seconds from `now`; 0 when
    absent or not understood."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return 0.0


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
        if self._thread.ident is not None:  # started
            self._thread.join(timeout_s)
