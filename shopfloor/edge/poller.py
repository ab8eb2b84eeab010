"""One machine's poll loop, for a polled driver: wake at each point group's schedule,
read the plans due through the driver, hand the reading to the machine's stream.

Points are grouped by poll interval (a point's own, else the machine's); the driver
plans each group once. Groups due at the same moment are read together. Missed ticks
are skipped, not caught up (`polls_skipped{reason="late"}`), and the overload governor
may shed a poll (`reason="shed"`, overload.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from shopfloor.edge.drivers.base import Driver
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.overload import Governor
from shopfloor.edge.schedule import Ticker
from shopfloor.edge.stream import MachineStream
from shopfloor.shared.contract import utc_now
from shopfloor.shared.plant import Machine, Point


class MachinePoller:
    """Polls one machine forever (run it as a supervised task)."""

    def __init__(
        self,
        driver: Driver,
        stream: MachineStream,
        metrics: EdgeMetrics,
        governor: Governor | None = None,
        ticker: Ticker | None = None,
    ) -> None:
        self.driver = driver
        self.stream = stream
        self.machine_id = stream.machine_id
        self.machine = stream.machine
        self.metrics = metrics
        self.plans = plans_of(driver, self.machine_id, self.machine)
        self.tally = metrics.machine(self.machine_id)
        self.governor = governor or Governor(lambda: 0, lambda: False, 0)
        self._credit = 0.0
        self.ticker = ticker

    async def run(self, start_offset_s: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        ticker = self.ticker = self.ticker or Ticker()
        start = ticker.align(loop.time() + start_offset_s)
        exact = ticker.exact(min(self.plans, default=1.0))
        due = {interval: start for interval in self.plans}
        while True:
            scheduled = min(due.values())
            if exact:
                await asyncio.sleep(max(0.0, scheduled - loop.time()))
            else:
                await ticker.until(scheduled)  # with every poller of that time slot
            now = loop.time()
            self.metrics.poll_jitter.observe(max(0.0, now - scheduled))
            horizon = max(now, scheduled)  # the loop may wake a hair early
            ready = [iv for iv, t in due.items() if t <= horizon]  # all groups due go together
            plans = [self.plans[iv] for iv in ready]
            missed = 0
            for interval in ready:
                missed += _missed_ticks(due[interval], interval, now)
                due[interval] = _next_tick(due[interval], interval, now)
            if missed:
                self.tally.late += missed
                self.governor.count_skipped(missed)
            admitted, self._credit = self.governor.admit(self._credit)
            if not admitted:
                self.tally.shed += 1
                self.governor.count_skipped(1)
                continue
            came_back = await self.poll_once(plans)
            if came_back:  # read everything now, so the state is known at once
                due = dict.fromkeys(due, loop.time())

    async def poll_once(self, plans: list[Any], ts: dt.datetime | None = None) -> bool:
        """One poll: read, queue telemetry and state. True when the machine came back.
        `ts`: the poll's time (default now; a past poll brought in as history); the
        driver's source timestamp, when it gives one, wins."""
        ts = ts or utc_now()
        loop = asyncio.get_running_loop()
        started = loop.time()
        reading = await self.driver.read(self.machine_id, plans)
        self.metrics.poll_duration.observe(loop.time() - started)
        self.tally.polls += 1
        return self.stream.accept(reading.ts or ts, reading)


def plans_of(driver: Driver, machine_id: str, machine: Machine) -> dict[float, Any]:
    """The driver's read plan per poll interval (points without their own interval use
    the machine's)."""
    groups: dict[float, list[Point]] = {}
    for point in machine.points:
        groups.setdefault(machine.interval_of(point), []).append(point)
    return {interval: driver.plan(machine_id, points) for interval, points in groups.items()}


def _missed_ticks(previous: float, interval: float, now: float) -> int:
    """Ticks of the grid previous + k * interval (k >= 1) that passed by `now` unpolled,
    the one being polled now aside."""
    return int(max(0.0, now - previous) // interval)


def _next_tick(previous: float, interval: float, now: float) -> float:
    """The next scheduled time after `now` on the grid previous + k * interval (missed
    ticks are skipped, not caught up)."""
    nxt = previous + interval
    if nxt <= now:
        nxt += ((now - nxt) // interval + 1) * interval
    return nxt
