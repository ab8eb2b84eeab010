"""The driver interface (see the package docstring for how the agent uses it)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from shopfloor.edge.errors import DeviceError
from shopfloor.shared.contract import PointValue as Value
from shopfloor.shared.plant import Agent, Machine, Point


@dataclass(slots=True)
class Reading:
    """What one read of a machine gave (one poll, or one push of a driver).

    `values`: point name -> engineering value (scale and offset applied, the type the
    point's `type` says). `bad`: the points read but without a trustworthy value (device
    status bad, NaN, short answer) or not read because a request failed; a point is in
    `values` or `bad`, or in neither when it was not asked for. `errors`: what failed
    (each counted in `shopfloor_edge_poll_failures_total{kind}`); `answered`: at least
    one request of this read was answered (a reading with errors and not answered is a
    failed poll: after `agent.offline_after_failures` of them the machine is offline).
    `ts`: the event time of the values (the device's source timestamp) when the driver
    has one, else None and the agent stamps the poll's start."""

    values: dict[str, Value]
    bad: set[str]
    errors: list[DeviceError] = field(default_factory=list)
    answered: bool = True
    ts: dt.datetime | None = None


T = TypeVar("T")
Done = Callable[[Reading | Exception], None]
"""Where a polled driver delivers the reading of one `start_read`: a Reading, or the
exception of a bug (the poller counts it as a crash, like a supervised task's)."""

Sink = Callable[[str, Reading], None]
"""Where a pushing driver delivers readings: sink(machine_id, reading), on the event
loop's thread. It only queues (never blocks, never raises)."""


@runtime_checkable
class Driver(Protocol):
    """One connection to field devices, serving the machines it was built with.

    Every driver can read (polled: `plan` + `read`), read one point and write one point.
    A driver whose `pushes` is True delivers its machines' readings itself from `run`
    (e.g. OPC UA data-change notifications at the publishing interval): the agent then
    runs `run(sink)` as a supervised task and polls none of its machines."""

    protocol: str
    """The plant file's `protocol:` name (also the prefix of its command errors)."""
    machines: tuple[str, ...]
    """The machine ids this driver serves."""
    pushes: bool

    def plan(self, machine_id: str, points: Sequence[Point]) -> Any:
        """A read plan for these points of the machine (pure, done once at start; the
        same points give an equal plan). Opaque to the agent: it hands plans back."""

    async def read(self, machine_id: str, plans: Sequence[Any]) -> Reading:
        """Read the plans' points now (several plans due at once go out together). Never
        raises for a device's failure: that is `Reading.errors`."""

    def start_read(self, machine_id: str, plans: Sequence[Any], done: Done) -> None:
        """`read`, driven by callbacks: start it now and call `done` once, later (never
        from inside this call), on the event loop thread. What the scheduled polls use:
        a driver may answer from its connection's own callbacks, with no task per poll
        (Modbus TCP); `finish_later(self.read(...), done)` is the plain way."""

    async def read_point(self, machine_id: str, point: Point) -> Value:
        """One point's value read from the device now. Raises DeviceError (failed
        read) or shared.errors.CodecError (a value that does not decode)."""

    async def write(self, machine_id: str, point: Point, value: Value) -> Value:
        """Write `value` (checked by shared.control_rules.check_value before) and return
        the value the point must read back as (the device's representation of it: scaled,
        rounded to the type). Raises DeviceError; a DeviceRefusedWrite when the device
        refused this value (the command is `rejected`, not `failed`)."""

    async def run(self, sink: Sink) -> None:
        """Pushing drivers: connect, subscribe and deliver readings to `sink` until
        cancelled (reconnects with shared.backoff; while the device is unreachable,
        deliver a failed Reading once per publishing interval so that the machine goes
        offline like a polled one). Polled drivers return at once."""

    def close(self) -> None:
        """Close the connection (idempotent)."""


_running: set[asyncio.Task[Any]] = set()


def finish_later(work: Coroutine[Any, Any, T], done: Callable[[T | Exception], None]) -> None:
    """Run `work` as a task and hand its result, or the exception it raised, to `done`
    (not when it was cancelled: the agent is stopping)."""
    task = asyncio.get_running_loop().create_task(work)
    _running.add(task)

    def finished(task: asyncio.Task[T]) -> None:
        _running.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            done(task.result())
        elif isinstance(exc, Exception):
            done(exc)

    task.add_done_callback(finished)


class DriverFactory(Protocol):
    """What a driver package exports as `FACTORY`."""

    def __call__(self, machines: Mapping[str, Machine], agent: Agent) -> list[Driver]:
        """The drivers for these machines (all of this protocol), each serving one or
        more of them (e.g. one Modbus driver per gateway or serial line). Called on the
        agent's running event loop (clients may bind to it)."""
