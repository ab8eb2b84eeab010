"""The OPC UA driver: one session (`session.OpcUaSession`) per machine, in the
connection's mode.

- **subscription** (`pushes`): `run(sink)` keeps a subscription with a monitored item per
  point. The server answers every publishing interval with data changes, or with a
  keep-alive after `poll_interval_s` without any. Each answer becomes readings of every
  point's current value: one per distinct source timestamp of the changes, stamped with
  it (the event time), or one at the publish time for a keep-alive. After a reconnect the
  server sends every item's current value again; a value with the source timestamp,
  value and status last seen for its point is a repeat and changes nothing, so a
  reconnect neither loses nor duplicates samples.
- **polling**: the agent's poller calls `read` at each point group's interval: one
  batched Read, stamped with the server's timestamp of the read.

A lost connection (socket closed, request timed out, or a subscription silent for
`SILENT_INTERVALS` intervals plus twice `timeout_s`) closes the session; the driver
connects again after the shared backoff (`shared/backoff.py`): a new session, the nodes
resolved again, a new subscription. Meanwhile a failed reading goes to the sink once per
`poll_interval_s`, so the machine goes offline like a polled one. A point whose node is
missing, of another type or an array is logged once (with its path in the plant file)
and stays bad; the others keep going. A Write the server refuses (Bad status code) is a
`DeviceRefusedWrite` naming the status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from asyncua import ua

from shopfloor.edge.drivers.base import Done, Reading, Sink, finish_later
from shopfloor.edge.drivers.opcua.convert import (
    as_utc,
    event_time,
    held,
    quality_is_good,
    status_name,
    to_value,
)
from shopfloor.edge.drivers.opcua.session import OpcUaSession
from shopfloor.edge.errors import DeviceError, DeviceRefusedWrite
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.contract import PointValue as Value
from shopfloor.shared.contract import utc_now
from shopfloor.shared.enums import DeviceFailure
from shopfloor.shared.errors import CodecError
from shopfloor.shared.plant import Agent, Machine, Point
from shopfloor.shared.protocols.opcua import OpcUaConnection, OpcUaPoint, ReadMode

log = logging.getLogger(__name__)

SILENT_INTERVALS = 3
"""A subscription that sent nothing (not even a keep-alive) for this many intervals (plus
twice the request timeout) is taken as lost."""


class OpcUaDriver:
    """One OPC UA machine (`base.Driver`): pushing in subscription mode, else polled."""

    protocol = "opcua"

    def __init__(self, machine_id: str, machine: Machine, agent: Agent) -> None:
        assert isinstance(machine.connection, OpcUaConnection)
        self.machine_id = machine_id
        self.machines = (machine_id,)
        self.connection: OpcUaConnection = machine.connection
        self.pushes = self.connection.mode is ReadMode.SUBSCRIPTION
        self.interval_s = machine.poll_interval_s
        self.points = [_opcua(p) for p in machine.points]
        self.by_name = {p.name: p for p in self.points}
        self.paths = {p.name: f"machines.{machine_id}.points[{i}]"
                      for i, p in enumerate(self.points)}
        self.session = OpcUaSession(machine_id, self.connection, self.points)
        self._backoff = Backoff(min(1.0, agent.backoff_max_s), agent.backoff_max_s)
        self._retry_at = 0.0
        self._connecting = asyncio.Lock()
        self._reported: set[str] = set()
        self._last_seen: dict[str, tuple[dt.datetime, Any, Any]] = {}
        self._current: dict[str, Value] = {}
        """Subscription mode: each point's last good value (what a reading carries)."""
        self._bad: set[str] = set()
        self._heard = 0.0
        self._closing: asyncio.Task[None] | None = None

    # ----- polled ----------------------------------------------------------------
    def plan(self, machine_id: str, points: Sequence[Point]) -> tuple[OpcUaPoint, ...]:
        return tuple(_opcua(p) for p in points)

    async def read(self, machine_id: str, plans: Sequence[tuple[OpcUaPoint, ...]]) -> Reading:
        points = [p for plan in plans for p in plan]
        names = {p.name for p in points}
        try:
            await self._ensure_connected()
            known = [p for p in points if p.name in self.session.nodes]
            values = await self.session.read(known) if known else []
        except DeviceError as exc:
            await self._after_error()
            return Reading({}, names, [exc], answered=False)
        reading = Reading({}, names - {p.name for p in known})
        for point, data in zip(known, values, strict=True):
            self._take(point, data, reading)
        stamps = [as_utc(d.ServerTimestamp) for d in values if d.ServerTimestamp]
        reading.ts = max(stamps, default=None)
        return reading

    def start_read(self, machine_id: str, plans: Sequence[tuple[OpcUaPoint, ...]],
                   done: Done) -> None:
        finish_later(self.read(machine_id, plans), done)

    # ----- commands ----------------------------------------------------------------
    async def read_point(self, machine_id: str, point: Point) -> Value:
        spec = _opcua(point)
        await self._ready_for(spec)
        (data,) = await self.session.read([spec])
        if not quality_is_good(data.StatusCode):
            raise DeviceError(machine_id, DeviceFailure.EXCEPTION,
                              f"read {point.name}: {status_name(data.StatusCode)}")
        return to_value(spec, data.Value)

    async def write(self, machine_id: str, point: Point, value: Value) -> Value:
        spec = _opcua(point)
        await self._ready_for(spec)
        try:
            await self.session.write(spec, value)
        except DeviceError as exc:
            if exc.kind is DeviceFailure.EXCEPTION:  # the server answered: a refusal
                raise DeviceRefusedWrite(machine_id, exc.kind, exc.detail) from exc
            raise
        return held(spec, value)

    async def _ready_for(self, point: OpcUaPoint) -> None:
        if not self.pushes:
            await self._ensure_connected()
        if self.session.client is None:
            raise DeviceError(self.machine_id, DeviceFailure.CONNECT,
                              f"{self.connection.endpoint}: not connected")
        if point.name not in self.session.nodes:
            why = self.session.problems.get(point.name, "node not resolved")
            raise DeviceError(self.machine_id, DeviceFailure.EXCEPTION, why)

    async def _ensure_connected(self) -> None:
        """Polled mode: connect if need be, not before the backoff allows. DeviceError."""
        async with self._connecting:
            if self.session.client is not None and not self.session.lost.is_set():
                return
            await self.session.close()
            loop = asyncio.get_running_loop()
            if loop.time() < self._retry_at:
                raise DeviceError(self.machine_id, DeviceFailure.CONNECT,
                                  f"{self.connection.endpoint}: waiting to reconnect")
            try:
                await self.session.connect()
            except DeviceError:
                self._retry_at = loop.time() + self._backoff.next_delay()
                raise
            self._backoff.reset()
            self._report(self.session.problems)

    async def _after_error(self) -> None:
        if self.session.lost.is_set():
            await self.session.close()

    # ----- pushing -----------------------------------------------------------------
    async def run(self, sink: Sink) -> None:
        if not self.pushes:
            return
        while True:
            try:
                await self.session.connect()
                self._report(self.session.problems)
                await self._subscribe(sink)
                self._backoff.reset()
                await self._watch()
            except DeviceError as exc:
                sink(self.machine_id, self._failed(exc))
            finally:
                await self.session.close()
            await self._wait_to_reconnect(sink)

    async def _wait_to_reconnect(self, sink: Sink) -> None:
        """The backoff's delay, with a failed reading each interval meanwhile."""
        loop = asyncio.get_running_loop()
        until = loop.time() + self._backoff.next_delay()
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(left, self.interval_s))
            if loop.time() < until:
                sink(self.machine_id, self._failed(DeviceError(
                    self.machine_id, DeviceFailure.CONNECT,
                    f"{self.connection.endpoint}: waiting to reconnect")))

    def _failed(self, exc: DeviceError) -> Reading:
        return Reading({}, set(self.by_name), [exc], answered=False)

    async def _subscribe(self, sink: Sink) -> None:
        self._heard = asyncio.get_running_loop().time()
        self._current.clear()  # the server sends every item's value first
        self._bad.clear()

        async def on_publish(published: ua.PublishResult) -> None:
            for reading in self._on_publish(published):
                sink(self.machine_id, reading)

        await self.session.subscribe(self.points, self.interval_s, on_publish)
        self._report(self.session.problems)

    async def _watch(self) -> None:
        """Wait for the session's loss, or for a subscription gone silent."""
        loop = asyncio.get_running_loop()
        limit = SILENT_INTERVALS * self.interval_s + 2 * self.connection.timeout_s
        while not self.session.lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self.session.lost.wait()
            if loop.time() - self._heard > limit:
                raise DeviceError(self.machine_id, DeviceFailure.TIMEOUT,
                                  f"no publish response for {limit:.0f} s")
        raise DeviceError(self.machine_id, DeviceFailure.TIMEOUT,
                          f"{self.connection.endpoint}: connection lost")

    def _on_publish(self, published: ua.PublishResult) -> list[Reading]:
        """A publish response: its readings (a keep-alive: one, at the publish time)."""
        self._heard = asyncio.get_running_loop().time()
        message = published.NotificationMessage
        publish_time = as_utc(message.PublishTime) if message.PublishTime else utc_now()
        handles = self.session.handles
        changes: list[tuple[str, ua.DataValue]] = []
        for data in message.NotificationData or []:
            if isinstance(data, ua.DataChangeNotification):
                changes += [(handles[item.ClientHandle], item.Value)
                            for item in data.MonitoredItems if item.ClientHandle in handles]
        return self.readings(changes, publish_time)

    def readings(self, changes: Iterable[tuple[str, ua.DataValue]],
                 publish_time: dt.datetime) -> list[Reading]:
        """Data changes -> readings of every point's current value, one per distinct
        source timestamp, oldest first; repeats (source timestamp, value and status last
        seen for the point) change nothing; nothing new: one reading at `publish_time`."""
        by_ts: dict[dt.datetime, list[tuple[str, ua.DataValue]]] = {}
        for name, data in changes:
            ts = event_time(data, publish_time)
            seen = (ts, data.Value.Value if data.Value else None, data.StatusCode)
            if self._last_seen.get(name) != seen:
                self._last_seen[name] = seen
                by_ts.setdefault(ts, []).append((name, data))
        if not by_ts:
            return [self._snapshot(publish_time)]
        out = []
        for ts in sorted(by_ts):
            for name, data in by_ts[ts]:
                reading = Reading({}, set())
                self._take(self.by_name[name], data, reading)
                if name in reading.bad:
                    self._current.pop(name, None)
                    self._bad.add(name)
                else:
                    self._current[name] = reading.values[name]
                    self._bad.discard(name)
            out.append(self._snapshot(ts))
        return out

    def _snapshot(self, ts: dt.datetime) -> Reading:
        """Every point's current value; points without a node or with a bad value in
        `bad` (a point whose first value has not come yet is in neither)."""
        bad = (set(self.by_name) - set(self.session.nodes)) | self._bad
        return Reading(dict(self._current), bad, ts=ts)

    # ----- both ----------------------------------------------------------------------
    def _take(self, point: OpcUaPoint, data: ua.DataValue, reading: Reading) -> None:
        if not quality_is_good(data.StatusCode):
            reading.bad.add(point.name)
            return
        try:
            reading.values[point.name] = to_value(point, data.Value)
        except CodecError as exc:
            reading.bad.add(point.name)
            self._report({point.name: str(exc)})

    def _report(self, problems: Mapping[str, str]) -> None:
        """Each point's problem once (the first time), with its path in the plant file."""
        for name, why in problems.items():
            key = f"{name}:{why}"
            if key not in self._reported:
                self._reported.add(key)
                log.error("%s (%s): %s; the point is bad, the others keep going",
                          self.paths[name], name, why)

    def close(self) -> None:
        if self.session.client is not None and self._closing is None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to close
                self._closing = asyncio.get_running_loop().create_task(self.session.close())


def _opcua(point: Point) -> OpcUaPoint:
    if not isinstance(point, OpcUaPoint):
        raise TypeError(f"{point.name} is a {point.protocol} point, not opcua")
    return point


def drivers(machines: Mapping[str, Machine], agent: Agent) -> list[OpcUaDriver]:
    """One driver (one session) per OPC UA machine."""
    return [OpcUaDriver(mid, machine, agent) for mid, machine in machines.items()]
