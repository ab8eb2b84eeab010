"""One machine's sample stream, whatever the protocol: a `Reading` (from a poll or
pushed by a driver) becomes one telemetry message in the outbox (deadband, sequence
number) and, when it changed, the retained state.

A reading fails when none of its requests was answered; after
`agent.offline_after_failures` failed readings in a row the machine's state becomes
`offline` (retained), with `since` = its first failed reading. The first reading it
answers brings it back.
"""

from __future__ import annotations

import datetime as dt
import logging

from shopfloor.edge.drivers.base import Reading
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.recent import RecentTimes
from shopfloor.edge.sample import DeadbandFilter, telemetry_payload
from shopfloor.edge.state import StateTracker, StateView, derive_state, offline_view
from shopfloor.edge.store import Message
from shopfloor.shared import topics
from shopfloor.shared.contract import utc_now
from shopfloor.shared.enums import DeviceFailure, offline_reason
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Agent, Machine
from shopfloor.shared.schema import EPOCH, ONE_MS, to_ms

log = logging.getLogger(__name__)

RECENT_MS = 1024
"""How many of a machine's last sample times are kept to keep a new one off them."""
FLOOR_AHEAD_MS = 60_000
"""A stream's latest stored sample time further ahead of the agent's clock than this at
start is not kept as its floor (`restart_floor`)."""
NO_FLOOR = -(2**63)
"""The floor of a stream that knows no earlier sample time."""


def restart_floor(latest_ms: int | None, now_ms: int) -> int:
    """The millisecond a restarted stream's samples must come after: the latest sample
    time stored before the restart (`Store.latest_ms`). InfluxDB may hold a sample at any
    earlier millisecond, and the agent no longer knows which (the new OPC UA
    subscription's first values carry the source times of samples already stored).

    NO_FLOOR when there is none, or when it is more than FLOOR_AHEAD_MS ahead of
    `now_ms`, the agent's clock: a clock that was ahead before the restart (or a server's
    clock far ahead) would otherwise push every sample after it, for as long as it was
    ahead (a warning says so)."""
    if latest_ms is None:
        return NO_FLOOR
    if latest_ms - now_ms > FLOOR_AHEAD_MS:
        return NO_FLOOR
    return latest_ms


class MachineStream:
    """Turns one machine's readings into telemetry and state messages."""

    def __init__(
        self,
        site: str,
        machine_id: str,
        machine: Machine,
        agent: Agent,
        outbox: Outbox,
        metrics: EdgeMetrics,
        tracker: StateTracker,
        times: dict[str, int] | None = None,
    ) -> None:
        """`times`: the outbox's latest sample time per stream (`Store.latest_ms`): this
        stream's entry, stored before a restart, is the floor of its new sample times
        (`restart_floor`), and the stream keeps it up to date (every commit writes it
        with the stream's seq). None: neither (edge/history.py, back-dated on purpose)."""
        self.machine_id = machine_id
        self.machine = machine
        self.outbox = outbox
        self.metrics = metrics
        self.tracker = tracker
        self.offline_after = agent.offline_after_failures
        self.deadband = DeadbandFilter(machine.points)
        self._deadbanded = self.deadband.active
        self.telemetry_topic = topics.machine_topic(
            site, machine.line, machine_id, topics.TELEMETRY
        )
        self.state_topic = topics.machine_topic(site, machine.line, machine_id, topics.STATE)
        self.failures = FailureLog(log, f"machine {machine_id}")
        self.tally = metrics.machine(machine_id)
        self.failed_polls = 0
        self.first_failure: dt.datetime | None = None
        self.online: bool | None = None
        self._state_points = _state_points(machine)
        self._state_inputs: list[object] | None = None
        self._times = {} if times is None else times
        latest_ms = self._times.get(machine_id)
        self._floor = self._restart_floor(latest_ms)
        self._recent = RecentTimes(RECENT_MS, NO_FLOOR if latest_ms is None else latest_ms)
        self._derived: StateView | None = None

    def accept(self, ts: dt.datetime, reading: Reading) -> bool:
        """Queue the reading's telemetry and state, stamped `ts` (its event time). True
        when the machine just came back online."""
        if reading.errors:
            for error in reading.errors:
                self.metrics.poll_failures.labels(self.machine_id, error.kind).inc()
        self._queue_telemetry(ts, reading)
        came_back = self._track(ts, reading)
        self._queue_state(ts, reading)
        return came_back

    def _queue_telemetry(self, ts: dt.datetime, reading: Reading) -> None:
        values = reading.values
        if self._deadbanded:  # most machines have no deadbanded point: no calls
            if reading.bad:
                self.deadband.forget(reading.bad)
            values = self.deadband.apply(values)
        seq = self.outbox.next_seq(self.machine_id)
        ts = self._free_millisecond(ts)
        payload = telemetry_payload(ts, seq, values, reading.bad, self.outbox.epoch)
        self.outbox.put(Message(self.telemetry_topic, payload, sample=True))

    def _free_millisecond(self, ts: dt.datetime) -> dt.datetime:
        """`ts`, or the next millisecond after it that none of the machine's last
        RECENT_MS samples took and that is after the floor (the latest sample time
        stored before the agent started: `restart_floor`). InfluxDB keeps one point per
        series and millisecond (shared/schema.py `to_ms`), so two samples in one
        millisecond (an OPC UA server's source times of changes 0.3 ms apart, a source
        time repeated in a later publish or after a restart) stored one and lost the
        other. Only a sample that would collide, or is at or before the floor, moves; a
        back-dated one after the floor keeps its time."""
        ms = to_ms(ts)
        latest = self._recent.latest
        taken = self._recent.take(ms, self._floor)
        if taken != ms:
            ts = EPOCH + taken * ONE_MS
        if taken > latest:
            self._times[self.machine_id] = taken  # committed with the seq
        return ts

    def _restart_floor(self, latest_ms: int | None) -> int:
        now_ms = to_ms(utc_now())
        floor = restart_floor(latest_ms, now_ms)
        if latest_ms is not None and floor == NO_FLOOR:
            log.warning(
                "machine %s: its latest stored sample time is %.0f s ahead of this clock;"
                " not kept as the floor of new sample times (a clock that was ahead): a"
                " new sample stamped in the same millisecond as a stored one overwrites it",
                self.machine_id, (latest_ms - now_ms) / 1000)
        return floor

    def _track(self, ts: dt.datetime, reading: Reading) -> bool:
        """Failure counting and logging; True when the machine just came back."""
        error = reading.errors[0] if reading.errors else None
        if error is not None and not reading.answered:
            self.failed_polls += 1
            self.first_failure = self.first_failure or ts
            self.failures.failure("%s", error.detail)
            if self.failed_polls >= self.offline_after:
                self._set_online(False)
            return False
        if error is not None:
            self.failures.failure("partial poll: %s", error.detail)
        elif self.failures.failing:
            self.failures.success()
        self.failed_polls = 0
        self.first_failure = None
        if self.online is True:  # the usual poll: online before and after
            return False
        was_offline = self.online is False
        self._set_online(True)
        return was_offline

    def _set_online(self, online: bool) -> None:
        if online == self.online:
            return
        self.tally.online = 1 if online else 0
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

    def _queue_state(self, ts: dt.datetime, reading: Reading) -> None:
        if self.machine.state is None:
            return
        if self.online is False:
            failure = reading.errors[0].kind if reading.errors else DeviceFailure.NO_RESPONSE
            view = offline_view(self.tracker.view, offline_reason(failure))
            payload = self.tracker.update(view, ts, since=self.first_failure)
        else:
            values = reading.values
            inputs = [values.get(name, _ABSENT) for name in self._state_points]
            if inputs == self._state_inputs and self.tracker.view is self._derived:
                return  # what the state is derived from did not change: neither did it
            payload = self.tracker.update(derive_state(self.machine, values, self.tracker.view), ts)
            self._state_inputs, self._derived = inputs, self.tracker.view
        if payload is not None:
            self.outbox.put_state(self.machine_id, self.state_topic, payload)


_ABSENT = object()
"""A point not read in this reading (unlike one read as None)."""


def _state_points(machine: Machine) -> tuple[str, ...]:
    """The points `derive_state` reads: state, product, work order."""
    names = (machine.state.point if machine.state else None, machine.control.product,
             machine.control.work_order)
    return tuple(name for name in names if name is not None)
