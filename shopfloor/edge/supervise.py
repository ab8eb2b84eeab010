"""Supervised tasks: a task that crashes is logged, counted and started again after a
backoff, and it makes the agent unhealthy (/healthz 503, `problems` in its status) until
it has run `HEALTHY_AFTER_S` without crashing again — a crash loop never hides behind
an "ok"."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.shared.backoff import Backoff

log = logging.getLogger(__name__)

HEALTHY_AFTER_S = 60.0
"""A crashed task counts as healthy again after running this long without a crash."""


class TaskHealth:
    """The last crash of each task (monotonic time, error), for /healthz."""

    def __init__(self, metrics: EdgeMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._crashes: dict[str, tuple[float, str]] = {}

    def crashed(self, name: str, exc: BaseException) -> None:
        self._crashes[name] = (self._clock(), f"{type(exc).__name__}: {exc}")
        self._metrics.task_crashes.labels(name.split(":", 1)[0]).inc()

    def problems(self) -> list[str]:
        """One line per task that crashed within the last HEALTHY_AFTER_S."""
        now = self._clock()
        return [
            f"task {name} crashed {now - at:.0f} s ago: {error}"
            for name, (at, error) in sorted(self._crashes.items())
            if now - at < HEALTHY_AFTER_S
        ]


async def supervise(name: str, factory: Callable[[], Awaitable[Any]], health: TaskHealth) -> None:
    """Run a task; if it crashes, log it, record it and start it again after a backoff."""
    backoff = Backoff(0.5, 10.0)
    while True:
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a supervisor restarts whatever crashed
            health.crashed(name, exc)
            delay = backoff.next_delay()
            log.exception("task %s crashed; restarting in %.1f s", name, delay)
            await asyncio.sleep(delay)
