"""One webhook target's delivery loop, in its own thread: the target's oldest pending
notification is POSTed until the receiver answers 2xx, with the shared backoff between
attempts; only then the next one (delivery in queue order). An attempt is bounded by
the target's `timeout_s` per phase (connect, send, wait for the answer's head), so a
hanging receiver delays its own notifications and nothing else: the alarm loop only
adds rows to the queue.
"""

from __future__ import annotations

import logging
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
    def __init__(self, target: Webhook, secret: bytes, queue: NotificationQueue, retry_max_s: float,
                 dead_letter_after_s: float, stop: threading.Event) -> None:
        self.target = target
        self._secret = secret
        self._queue = queue
        self._dead_after_s = dead_letter_after_s
        self._stop = stop
        self.wake = threading.Event()
        self._backoff = Backoff(base_s=min(0.5, retry_max_s), max_s=retry_max_s)
        self._failures = FailureLog(log, f"webhook {target.id} ({target.url})")
        self.last_error = ""
        self.attempts_failed = 0
        self._thread = threading.Thread(target=self._run, name=f"webhook-{target.id}",
                                        daemon=True)

    @property
    def failing(self) -> bool:
        return self._failures.failing

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        with httpx.Client(timeout=self.target.timeout_s, follow_redirects=False) as client:
            while not self._stop.is_set():
                self.wake.clear()
                queued = self._queue.head(self.target.id)
                if queued is None:
                    self.wake.wait(IDLE_S)
                    continue
                self._deliver(client, queued)

    def _deliver(self, client: httpx.Client, queued: Queued) -> None:
        error = self._attempt(client, queued)
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
        self._stop.wait(self._backoff.next_delay())

    def _attempt(self, client: httpx.Client, queued: Queued) -> str | None:
        """POST one notification; None on a 2xx answer, else what went wrong."""
        note = queued.notification
        headers = message.headers(self._secret, note.key, note.event, note.body,
                                  queued.attempts + 1, time.time())
        try:
            with client.stream("POST", self.target.url, content=note.body,
                               headers=headers) as response:
                status = response.status_code
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if 200 <= status < 300 else f"HTTP {status}"
