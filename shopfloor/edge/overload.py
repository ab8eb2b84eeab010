"""Graceful overload: when the agent has more polling than CPU, it sheds polls fairly
instead of letting everything fall behind.

Three signals, per control period: the event loop thread busy (its CPU time over the
period's wall time above `BUSY_HIGH`: there is no idle time left to absorb more work),
the loop late (a short sleep wakes up more than `LAG_HIGH_S` late, median over the
period, so that the process being descheduled once is no overload), and, while the
broker is connected, an outbox that keeps growing past `backlog_limit` (the publisher
is not keeping up). Every `CONTROL_PERIOD_S` the governor sets the
**admission ratio**: on a signal it cuts it (x `DECREASE`, not below `MIN_RATIO`),
without one it raises it x `INCREASE` (up to 1). Each poller keeps a credit: every
scheduled tick adds the ratio, a poll spends 1, so every machine is polled at the same
reduced rate (a ratio of 0.5 polls each machine every other tick) rather than some not
at all. A tick shed this way, and a tick missed because the poller woke too late, is
counted (`shopfloor_edge_polls_skipped_total{machine,reason}`); the status payload and
`shopfloor_edge_overloaded` say whether the agent is in an overload episode; one
WARNING line starts an episode, one INFO line ends it (after `CALM_PERIODS` at full
rate) with its count.

A broker outage is no overload: the outbox grows by design then, and only the loop's
lag counts.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

PROBE_S = 0.02
"""The lag probe's sleep: the loop is late by how much longer it takes."""
CONTROL_PERIOD_S = 0.5
BUSY_HIGH = 0.9
"""Share of a control period the loop thread spent on the CPU above which it is saturated."""
LAG_HIGH_S = 0.025
"""Median probe lag in a control period above which the agent is overloaded."""
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
        self._lags: list[float] = []
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

    def observe_lag(self, lag_s: float) -> None:
        self._lags.append(lag_s)

    def control(self, now: float, busy: float = 0.0) -> None:
        """One control step (every CONTROL_PERIOD_S); `busy`: the loop thread's CPU share."""
        backlog = self._backlog()
        growing = (
            self._connected() and backlog > self._backlog_limit and backlog > self._last_backlog
        )
        self._last_backlog = backlog
        lag = statistics.median(self._lags) if self._lags else 0.0
        self._lags.clear()
        signal = busy > BUSY_HIGH or lag > LAG_HIGH_S or growing
        if signal:
            self.ratio = max(MIN_RATIO, self.ratio * DECREASE)
        else:
            self.ratio = min(1.0, self.ratio * INCREASE + 0.02)
        self._calm = 0 if signal or self.ratio < 1.0 else self._calm + 1
        log.debug(
            "loop busy %.0f %%, lag %.1f ms, backlog %d: admission %.2f",
            busy * 100, lag * 1000, backlog, self.ratio,
        )
        if growing:
            why = f"outbox growing ({backlog} samples) while connected"
        else:
            why = f"event loop {busy * 100:.0f} % busy, {lag * 1000:.0f} ms late"
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
        """Probe the loop's lag and run the control steps (a supervised task)."""
        loop = asyncio.get_running_loop()
        last, last_cpu = loop.time(), time.thread_time()  # this task runs on the loop thread
        while True:
            before = loop.time()
            await asyncio.sleep(PROBE_S)
            now = loop.time()
            self.observe_lag(max(0.0, now - before - PROBE_S))
            if now - last >= CONTROL_PERIOD_S:
                cpu = time.thread_time()
                self.control(now, (cpu - last_cpu) / (now - last))
                last, last_cpu = now, cpu
