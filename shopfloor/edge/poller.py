"""One machine's poll loop: wake at each point group's schedule, read the planned
blocks, decode, and queue one telemetry message (and the state, when it changed).

A poll fails when none of its reads succeeds; after `agent.offline_after_failures`
failed polls in a row the machine's state becomes `offline` (retained), with `since`
= its first failed poll. The first poll it answers brings it back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shopfloor.edge.errors import DeviceError
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.modbus import Bus
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.overload import Governor
from shopfloor.edge.plan import ReadBlock, plan_reads
from shopfloor.edge.sample import DeadbandFilter, decode_block, telemetry_payload
from shopfloor.edge.schedule import Ticker
from shopfloor.edge.state import StateTracker, derive_state, offline_view
from shopfloor.edge.store import Message
from shopfloor.shared import topics
from shopfloor.shared.codec import Value
from shopfloor.shared.contract import utc_now
from shopfloor.shared.enums import DeviceFailure, offline_reason
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Agent, Machine, Point

log = logging.getLogger(__name__)


class Reader(Protocol):
    """Where a poller reads: a Modbus bus (edge.modbus.Bus), or a simulated plant's past
    (sim.history.History) when history is brought into the outbox."""

    async def read_blocks(self, machine: str, device_id: int, blocks: Sequence[ReadBlock],
                          timeout_s: float) -> list[bytes | DeviceError | None]: ...


@dataclass(slots=True)
class PollResult:
    values: dict[str, Value]
    bad: set[str]
    error: DeviceError | None
    answered: bool


class MachinePoller:
    """Polls one machine forever (run it as a supervised task)."""

    def __init__(
        self,
        site: str,
        machine_id: str,
        machine: Machine,
        bus: Bus | Reader,
        agent: Agent,
        outbox: Outbox,
        metrics: EdgeMetrics,
        tracker: StateTracker,
        governor: Governor | None = None,
        ticker: Ticker | None = None,
    ) -> None:
        self.machine_id = machine_id
        self.machine = machine
        self.bus = bus
        self.outbox = outbox
        self.metrics = metrics
        self.tracker = tracker
        self.offline_after = agent.offline_after_failures
        self.plans = _plans(machine, agent)
        self.deadband = DeadbandFilter(machine.points)
        self.telemetry_topic = topics.machine_topic(
            site, machine.line, machine_id, topics.TELEMETRY
        )
        self.state_topic = topics.machine_topic(site, machine.line, machine_id, topics.STATE)
        self.failures = FailureLog(log, f"machine {machine_id}")
        self.failed_polls = 0
        self.first_failure: dt.datetime | None = None
        self.online: bool | None = None
        self._polls = metrics.polls.labels(machine_id)
        self.governor = governor or Governor(lambda: 0, lambda: False, 0)
        self._credit = 0.0
        self._shed = metrics.polls_skipped.labels(machine_id, "shed")
        self._late = metrics.polls_skipped.labels(machine_id, "late")
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
            blocks = [block for iv in ready for block in self.plans[iv]]
            missed = 0
            for interval in ready:
                missed += _missed_ticks(due[interval], interval, now)
                due[interval] = _next_tick(due[interval], interval, now)
            if missed:
                self._skip(self._late, missed)
            admitted, self._credit = self.governor.admit(self._credit)
            if not admitted:
                self._skip(self._shed, 1)
                continue
            came_back = await self.poll_once(blocks)
            if came_back:  # read everything now, so the state is known at once
                due = dict.fromkeys(due, loop.time())

    def _skip(self, counter: Any, n: int) -> None:
        counter.inc(n)
        self.governor.count_skipped(n)

    async def poll_once(self, blocks: list[ReadBlock], ts: dt.datetime | None = None) -> bool:
        """One poll: read, queue telemetry and state. True when the machine came back.
        `ts`: the poll's time (default now; a past poll brought in as history)."""
        ts = ts or utc_now()
        started = asyncio.get_running_loop().time()
        result = await self._read(blocks)
        self.metrics.poll_duration.observe(asyncio.get_running_loop().time() - started)
        self._polls.inc()
        self._queue_telemetry(ts, result)
        came_back = self._track(ts, result)
        self._queue_state(ts, result)
        return came_back

    async def _read(self, blocks: list[ReadBlock]) -> PollResult:
        result = PollResult({}, set(), None, False)
        connection = self.machine.connection
        outcomes = await self.bus.read_blocks(
            self.machine_id, connection.device_id, blocks, connection.timeout_s
        )
        for block, outcome in zip(blocks, outcomes, strict=True):
            if outcome is None or isinstance(outcome, DeviceError):
                if outcome is not None:  # None: not tried after the device failed
                    self.metrics.poll_failures.labels(self.machine_id, outcome.kind).inc()
                    result.error = result.error or outcome
                result.bad.update(p.name for p in block.points)
                continue
            result.answered = True
            values, bad = decode_block(block, outcome)
            result.values.update(values)
            result.bad |= bad
        return result

    def _queue_telemetry(self, ts: dt.datetime, result: PollResult) -> None:
        self.deadband.forget(result.bad)
        values = self.deadband.apply(result.values)
        seq = self.outbox.next_seq(self.machine_id)
        payload = telemetry_payload(ts, seq, values, result.bad, self.outbox.epoch)
        self.outbox.put(Message(self.telemetry_topic, payload, sample=True))

    def _track(self, ts: dt.datetime, result: PollResult) -> bool:
        """Failure counting and logging; True when the machine just came back."""
        if result.error is not None and not result.answered:
            self.failed_polls += 1
            self.first_failure = self.first_failure or ts
            self.failures.failure("%s", result.error.detail)
            if self.failed_polls >= self.offline_after:
                self._set_online(False)
            return False
        if result.error is not None:
            self.failures.failure("partial poll: %s", result.error.detail)
        else:
            self.failures.success()
        was_offline = self.online is False
        self.failed_polls = 0
        self.first_failure = None
        self._set_online(True)
        return was_offline

    def _set_online(self, online: bool) -> None:
        if online == self.online:
            return
        self.metrics.device_online.labels(self.machine_id).set(1 if online else 0)
        if online:
            self.metrics.devices_online.inc()
            if self.online is False:
                log.info("machine %s is back online", self.machine_id)
        else:
            if self.online:
                self.metrics.devices_online.dec()
            log.warning(
                "machine %s is offline after %d failed poll(s)", self.machine_id, self.failed_polls
            )
        self.online = online

    def _queue_state(self, ts: dt.datetime, result: PollResult) -> None:
        if self.machine.state is None:
            return
        if self.online is False:
            failure = result.error.kind if result.error else DeviceFailure.NO_RESPONSE
            view = offline_view(self.tracker.view, offline_reason(failure))
            payload = self.tracker.update(view, ts, since=self.first_failure)
        else:
            payload = self.tracker.update(
                derive_state(self.machine, result.values, self.tracker.view), ts
            )
        if payload is not None:
            self.outbox.put_state(self.machine_id, self.state_topic, payload)


def _plans(machine: Machine, agent: Agent) -> dict[float, list[ReadBlock]]:
    """Read plans per poll interval (points without their own interval use the machine's)."""
    groups: dict[float, list] = {}
    for point in machine.points:
        groups.setdefault(machine.interval_of(point), []).append(point)
    return {
        interval: _plan(tuple(points), agent.max_read_registers, agent.max_read_gap)
        for interval, points in groups.items()
    }


@functools.lru_cache(maxsize=1024)
def _plan(points: tuple[Point, ...], max_registers: int, max_gap: int) -> list[ReadBlock]:
    """Machines with equal register maps share one plan (blocks and their compiled
    decoders are immutable): memory at thousands of machines."""
    return plan_reads(points, max_registers, max_gap)


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
