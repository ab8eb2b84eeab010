"""One machine's polls, for a polled driver: at each point group's schedule read the
plans due through the driver and hand the reading to the machine's stream.

Points are grouped by poll interval (a point's own, else the machine's); the driver
plans each group once. Groups due at the same moment are read together. Missed ticks
are skipped, not caught up (`polls_skipped{reason="late"}`), and the overload governor
may shed a poll (`reason="shed"`, overload.py).

Driven by callbacks, not a task per machine: the time slot's timer (schedule.Ticker)
starts the poll (`Driver.start_read`), and the driver's answer (for Modbus TCP: in the
connection's own `data_received`) finishes it and books the next one. At 1,000 machines
a task per machine cost two task steps, five futures and an await chain of five
coroutines per poll (docs/edge.md#performance). A poll that raises is a crash, as a
supervised task's would be: logged, counted (`task_crashes_total{task="poll"}`), the
agent unhealthy for a minute, and the machine polled again after a backoff.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from shopfloor.edge.drivers.base import Driver, Reading
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.overload import Governor
from shopfloor.edge.schedule import Ticker
from shopfloor.edge.stream import MachineStream
from shopfloor.edge.supervise import TaskHealth
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.contract import utc_now
from shopfloor.shared.plant import Machine, Point

log = logging.getLogger(__name__)


class MachinePoller:
    """Polls one machine from `start` until `stop` (event loop thread only)."""

    def __init__(
        self,
        driver: Driver,
        stream: MachineStream,
        metrics: EdgeMetrics,
        governor: Governor | None = None,
        ticker: Ticker | None = None,
        health: TaskHealth | None = None,
    ) -> None:
        self.driver = driver
        self.stream = stream
        self.machine_id = stream.machine_id
        self.machine = stream.machine
        self.metrics = metrics
        self.plans = plans_of(driver, self.machine_id, self.machine)
        self._only = next(iter(self.plans)) if len(self.plans) == 1 else None
        """The poll interval when all points share one (most machines): no grouping."""
        self._only_plans = list(self.plans.values())
        self.tally = metrics.machine(self.machine_id)
        self.governor = governor or Governor(lambda: 0, lambda: False, 0)
        self.ticker = ticker
        self.health = health
        self._loop = asyncio.get_running_loop()
        self._credit = 0.0
        self._due: dict[float, float] = {}
        self._scheduled = 0.0
        self._exact = False
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self._ts = utc_now()
        self._started = 0.0
        self._backoff: Backoff | None = None

    def start(self, start_offset_s: float = 0.0) -> None:
        """Begin polling `start_offset_s` from now (aligned to a time slot)."""
        ticker = self.ticker = self.ticker or Ticker()
        start = ticker.align(self._loop.time() + start_offset_s)
        self._exact = any(ticker.exact(interval) for interval in self.plans)
        self._due = dict.fromkeys(self.plans, start)
        self._running = True
        self._book()

    def stop(self) -> None:
        """No poll starts after this; the answer of one under way is not taken."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()

    def _book(self) -> None:
        """Wait for the next tick of any group."""
        if not self._running or not self._due:
            return
        only = self._only
        self._scheduled = scheduled = self._due[only] if only is not None \
            else min(self._due.values())
        if self._exact:  # shorter than a slot: timed on its own
            self._timer = self._loop.call_at(scheduled, self._tick)
        else:
            self.ticker.at(scheduled, self._tick)  # type: ignore[union-attr]

    def _tick(self) -> None:
        if not self._running:
            return
        try:
            self._begin()
        except Exception as exc:  # noqa: BLE001 - counted as a crash; polling goes on
            self._crashed(exc)

    def _begin(self) -> None:
        now = self._loop.time()
        scheduled = self._scheduled
        self.metrics.poll_jitter.observe(max(0.0, now - scheduled))
        due = self._due
        only = self._only
        if only is not None:
            previous = due[only]
            missed = _missed_ticks(previous, only, now)
            due[only] = _next_tick(previous, only, now)
            plans = self._only_plans
        else:
            horizon = max(now, scheduled)  # the loop may wake a hair early
            ready = [iv for iv, t in due.items() if t <= horizon]  # all groups due go together
            missed = 0
            for interval in ready:
                missed += _missed_ticks(due[interval], interval, now)
                due[interval] = _next_tick(due[interval], interval, now)
            plans = [self.plans[iv] for iv in ready]
        if missed:
            self.tally.late += missed
            self.governor.count_skipped(missed)
        governor = self.governor
        if governor.ratio < 1.0:  # at full rate every tick is admitted (admit's rule)
            admitted, self._credit = governor.admit(self._credit)
            if not admitted:
                self.tally.shed += 1
                governor.count_skipped(1)
                self._book()
                return
        self._ts = utc_now()
        self._started = now
        self.driver.start_read(self.machine_id, plans, self._done)

    def _done(self, reading: Reading | Exception) -> None:
        if not self._running:
            return
        try:
            if isinstance(reading, Exception):
                raise reading
            came_back = self.accept(self._ts, self._started, reading)
        except Exception as exc:  # noqa: BLE001 - counted as a crash; polling goes on
            self._crashed(exc)
            return
        if came_back:  # read everything now, so the state is known at once
            self._due = dict.fromkeys(self._due, self._loop.time())
        self._book()

    def _crashed(self, exc: Exception) -> None:
        name = f"poll:{self.machine_id}"
        if self.health is not None:
            self.health.crashed(name, exc)
        self._backoff = self._backoff or Backoff(0.5, 10.0)
        delay = self._backoff.next_delay()
        log.error("task %s crashed; polling again in %.1f s", name, delay, exc_info=exc)
        resume = self._loop.time() + delay
        self._due = {iv: max(t, resume) for iv, t in self._due.items()}
        self._book()

    def accept(self, ts: dt.datetime, started: float, reading: Reading) -> bool:
        """Book a reading of a poll started at `started` (loop time), stamped `ts` unless
        the driver gave a source time. True when the machine came back."""
        self.metrics.poll_duration.observe(self._loop.time() - started)
        self.tally.polls += 1
        return self.stream.accept(reading.ts or ts, reading)

    async def poll_once(self, plans: list[Any], ts: dt.datetime | None = None) -> bool:
        """One poll, awaited (history brought into the outbox): read, queue telemetry and
        state. True when the machine came back. `ts`: the poll's time (default now); the
        driver's source timestamp, when it gives one, wins."""
        ts = ts or utc_now()
        started = self._loop.time()
        reading = await self.driver.read(self.machine_id, plans)
        return self.accept(ts, started, reading)


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
