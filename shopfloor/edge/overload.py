"""Graceful overload: when the agent has more polling than CPU, it sheds polls fairly
instead of letting everything fall behind.

Two signals, per control period: the event loop busy — the share of wall time it
spent *not* waiting in its selector above `BUSY_HIGH`: no idle time is left, the work
offered is more than the CPU the process gets (its own CPU time would not tell that
on a shared machine, where other processes take the cores) — and, while the broker is
connected, an outbox that keeps growing past `backlog_limit` (the publisher is not
keeping up). A loop that is merely woken late by the OS but has little to do is no
overload: its polls are then late, and counted as such, but not shed.

Every `CONTROL_PERIOD_S` the governor sets the **admission ratio**: on a signal it
cuts it (x `DECREASE`, not below `MIN_RATIO`), without one it raises it x `INCREASE`
(up to 1). Each poller keeps a credit: every
scheduled tick adds the ratio, a poll spends 1, so every machine is polled at the same
reduced rate (a ratio of 0.5 polls each machine every other tick) rather than some not
at all. A tick shed this way, and a tick missed because the poller woke too late, is
counted (`shopfloor_edge_polls_skipped_total{machine,reason}`); the status payload and
`shopfloor_edge_overloaded` say whether the agent is in an overload episode; one
WARNING line starts an episode, one INFO line ends it (after `CALM_PERIODS` at full
rate) with its count.

A broker outage is no overload: the outbox grows by design then, and only the busy
loop counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CONTROL_PERIOD_S = 0.5
BUSY_HIGH = 0.9
"""Share of a control period the loop spent outside its selector's wait above which it
is saturated."""
DECREASE = 0.75
INCREASE = 1.2
"""Without a signal the ratio grows x INCREASE (+ 0.02): back to 1 in seconds."""
MIN_RATIO = 0.05
CALM_PERIODS = 8
"""An episode ends after this many control periods in a row at full rate without a
signal (4 s): the ratio's saw-tooth around capacity is one episode, not many."""


@dataclass(slots=True)
class Episode:
    """What the governor reports about the current (or last) overload episode."""

    started_at: float
    skipped: int = 0


class Governor:
    """Shared by the pollers of one agent (event loop thread only)."""

    def __init__(
        self,
        backlog: Callable[[], int],
        connected: Callable[[], bool],
        backlog_limit: int,
        on_change: Callable[[bool], None] = lambda overloaded: None,
    ) -> None:
        self.ratio = 1.0
        self.skipped = 0
        """Polls skipped since start (shed and late)."""
        self._backlog = backlog
        self._connected = connected
        self._backlog_limit = backlog_limit
        self._last_backlog = 0
        self._episode: Episode | None = None
        self._on_change = on_change
        self._calm = 0

    @property
    def overloaded(self) -> bool:
        return self._episode is not None

    def admit(self, credit: float) -> tuple[bool, float]:
        """One scheduled tick of a poller holding `credit`: (poll now?, new credit)."""
        credit += self.ratio
        if credit >= 1.0:
            return True, min(credit - 1.0, 1.0)
        return False, credit

    def count_skipped(self, n: int) -> None:
        self.skipped += n
        if self._episode is not None:
            self._episode.skipped += n

    def control(self, now: float, busy: float = 0.0) -> None:
        """One control step (every CONTROL_PERIOD_S); `busy`: the share of the period the
        event loop was not waiting for I/O or timers."""
        backlog = self._backlog()
        growing = (
            self._connected() and backlog > self._backlog_limit and backlog > self._last_backlog
        )
        self._last_backlog = backlog
        signal = busy > BUSY_HIGH or growing
        if signal:
            self.ratio = max(MIN_RATIO, self.ratio * DECREASE)
        else:
            self.ratio = min(1.0, self.ratio * INCREASE + 0.02)
        self._calm = 0 if signal or self.ratio < 1.0 else self._calm + 1
        log.debug("loop busy %.0f %%, backlog %d: admission %.2f", busy * 100, backlog, self.ratio)
        if growing:
            why = f"outbox growing ({backlog} samples) while connected"
        else:
            why = f"event loop {busy * 100:.0f} % busy"
        if self.ratio < 1.0 and self._episode is None:
            self._episode = Episode(now)
            log.warning(
                "overloaded (%s): shedding polls, every machine polled at %.0f %% of its rate",
                why,
                self.ratio * 100,
            )
            self._on_change(True)
        elif self._calm >= CALM_PERIODS and self._episode is not None:
            episode, self._episode = self._episode, None
            log.info(
                "overload over after %.1f s: %d poll(s) skipped",
                now - episode.started_at,
                episode.skipped,
            )
            self._on_change(False)

    async def run(self) -> None:
        """Measure how busy the loop is and run the control steps (a supervised task)."""
        loop = asyncio.get_running_loop()
        idle = _IdleClock(loop)
        last = loop.time()
        try:
            while True:
                await asyncio.sleep(CONTROL_PERIOD_S)
                now = loop.time()
                waited = idle.take()
                self.control(now, max(0.0, 1.0 - waited / (now - last)))
                last = now
        finally:
            idle.close()


class _IdleClock:
    """Wall time the event loop spends waiting in its selector (idle), measured by
    wrapping the selector's `select` (asyncio keeps it in `loop._selector`). Without
    one (another loop implementation) it reports the loop as never busy."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.waited = 0.0
        self._selector: Any = getattr(loop, "_selector", None)
        if self._selector is None or not hasattr(self._selector, "select"):
            self._selector = None
            self.waited = float("inf")
            return
        inner = self._selector.select
        clock = time.monotonic

        def select(timeout: float | None = None) -> Any:
            start = clock()
            try:
                return inner(timeout)
            finally:
                self.waited += clock() - start

        self._inner = inner
        self._selector.select = select

    def take(self) -> float:
        waited, self.waited = self.waited, (0.0 if self._selector is not None else self.waited)
        return waited

    def close(self) -> None:
        if self._selector is not None:
            self._selector.select = self._inner
