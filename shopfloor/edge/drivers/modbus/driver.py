"""The Modbus driver: one `Bus` (a TCP device, a gateway, a serial line) and the
machines on it. Reads are planned into coalesced blocks (`plan.py`) whose answers are
decoded in one unpack each (`blockcodec.py`); writes encode with the Modbus codec
(`shared/protocols/modbus/codec.py`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from shopfloor.edge.drivers.base import Done, Driver, Reading, Sink
from shopfloor.edge.drivers.modbus.bus import Bus, bus_key
from shopfloor.edge.drivers.modbus.plan import ReadBlock, plan_reads
from shopfloor.edge.drivers.modbus.tcpread import Outcome
from shopfloor.edge.errors import DeviceError
from shopfloor.shared.plant import Agent, Machine, Point
from shopfloor.shared.protocols.modbus import ModbusConnection, ModbusPoint
from shopfloor.shared.protocols.modbus.codec import Value, decode, encode
from shopfloor.shared.protocols.modbus.enums import Table


class BlockReader(Protocol):
    """Where the driver reads and writes: a `Bus`, or a simulated plant's past
    (`history.SourceReader`) when history is brought into the outbox."""

    async def read_blocks(self, machine: str, device_id: int, blocks: Sequence[ReadBlock],
                          timeout_s: float) -> list[Outcome]: ...

    def start_read_blocks(self, machine: str, device_id: int, blocks: Sequence[ReadBlock],
                          timeout_s: float,
                          finished: Callable[[list[Outcome] | Exception], None]) -> None: ...

    async def read(self, machine: str, device_id: int,
                   block: ReadBlock) -> list[int] | list[bool]: ...

    async def write(self, machine: str, device_id: int, table: Table, address: int,
                    values: Sequence[int]) -> None: ...

    def close(self) -> None: ...


class ModbusDriver:
    """A polled driver (`base.Driver`) over one Modbus connection."""

    protocol = "modbus"
    pushes = False

    def __init__(self, bus: BlockReader, machines: Mapping[str, Machine], agent: Agent) -> None:
        self.bus = bus
        self.machines = tuple(machines)
        self._connections = {mid: _modbus(m.connection) for mid, m in machines.items()}
        self._max_registers = agent.max_read_registers
        self._max_gap = agent.max_read_gap

    def plan(self, machine_id: str, points: Sequence[Point]) -> list[ReadBlock]:
        return _plan(tuple(_modbus_point(p) for p in points), self._max_registers, self._max_gap)

    async def read(self, machine_id: str, plans: Sequence[list[ReadBlock]]) -> Reading:
        blocks = _blocks(plans)
        connection = self._connections[machine_id]
        outcomes = await self.bus.read_blocks(
            machine_id, connection.device_id, blocks, connection.timeout_s
        )
        return _reading(blocks, outcomes)

    def start_read(self, machine_id: str, plans: Sequence[list[ReadBlock]], done: Done) -> None:
        blocks = _blocks(plans)
        connection = self._connections[machine_id]

        def finished(outcomes: list[Outcome] | Exception) -> None:
            if isinstance(outcomes, Exception):
                done(outcomes)
                return
            try:
                reading = _reading(blocks, outcomes)
            except Exception as exc:  # noqa: BLE001 - a bug: the poller counts the crash
                done(exc)
                return
            done(reading)

        self.bus.start_read_blocks(
            machine_id, connection.device_id, blocks, connection.timeout_s, finished
        )

    async def read_point(self, machine_id: str, point: Point) -> Value:
        spec = _modbus_point(point)
        block = ReadBlock(spec.table, spec.address, spec.count, (spec,))
        device_id = self._connections[machine_id].device_id
        data = await self.bus.read(machine_id, device_id, block)
        return decode(spec, [int(v) for v in data])

    async def write(self, machine_id: str, point: Point, value: Value) -> Value:
        spec = _modbus_point(point)
        registers = encode(spec, value)
        device_id = self._connections[machine_id].device_id
        await self.bus.write(machine_id, device_id, spec.table, spec.address, registers)
        return decode(spec, registers)

    async def run(self, sink: Sink) -> None:
        return None  # polled

    def close(self) -> None:
        self.bus.close()


def _blocks(plans: Sequence[list[ReadBlock]]) -> Sequence[ReadBlock]:
    """The blocks of the plans due together, in plan order."""
    return plans[0] if len(plans) == 1 else [b for plan in plans for b in plan]


def _reading(blocks: Sequence[ReadBlock], outcomes: Sequence[Outcome]) -> Reading:
    """The blocks' answers decoded into one reading."""
    if len(outcomes) == 1 == len(blocks):
        answer = outcomes[0]
        if isinstance(answer, bytes):  # one block, answered: the usual poll; the decoder
            values, bad = blocks[0].decoder.decode(answer)  # gives a new dict and set
            return Reading(values, bad)
    reading = Reading({}, set(), [], False)
    values = reading.values
    for block, outcome in zip(blocks, outcomes, strict=True):
        if outcome.__class__ is bytes:
            reading.answered = True
            good, bad = block.decoder.decode(outcome)
            values.update(good)
            if bad:
                reading.bad |= bad
            continue
        if outcome is not None:  # None: not tried after the device failed
            assert isinstance(outcome, DeviceError)
            reading.errors.append(outcome)
        reading.bad.update(p.name for p in block.points)
    return reading


def drivers(machines: Mapping[str, Machine], agent: Agent) -> list[Driver]:
    """One driver per bus: per TCP device, per gateway host:port, per serial line."""
    groups: dict[str, dict[str, Machine]] = {}
    for mid, machine in machines.items():
        groups.setdefault(bus_key(mid, _modbus(machine.connection)), {})[mid] = machine
    out: list[Driver] = []
    for key, group in groups.items():
        connection = _modbus(next(iter(group.values())).connection)
        out.append(ModbusDriver(Bus(key, connection, agent.backoff_max_s), group, agent))
    return out


@functools.lru_cache(maxsize=1024)
def _plan(points: tuple[ModbusPoint, ...], max_registers: int, max_gap: int) -> list[ReadBlock]:
    """Machines with equal register maps share one plan (blocks and their compiled
    decoders are immutable): memory at thousands of machines."""
    return plan_reads(points, max_registers, max_gap)


def _modbus(connection: object) -> ModbusConnection:
    assert isinstance(connection, ModbusConnection), connection
    return connection


def _modbus_point(point: Point) -> ModbusPoint:
    assert isinstance(point, ModbusPoint), point
    return point
