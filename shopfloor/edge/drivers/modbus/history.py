"""A simulated plant's past read like a Modbus bus: `SourceReader` answers a poll's read
blocks from a `Source` (sim.history.History: every device's registers at the instant
the source was advanced to), so that `edge.history.fill` runs the agent's own poll
pipeline over it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from shopfloor.edge.drivers.base import Driver, finish_later
from shopfloor.edge.drivers.modbus.bus import to_wire
from shopfloor.edge.drivers.modbus.driver import ModbusDriver
from shopfloor.edge.drivers.modbus.plan import ReadBlock
from shopfloor.edge.drivers.modbus.tcpread import Outcome
from shopfloor.edge.errors import DeviceError
from shopfloor.shared.enums import DeviceFailure
from shopfloor.shared.plant import Agent, Plant
from shopfloor.shared.protocols.modbus.enums import Table


class Source(Protocol):
    """Machines' registers at past instants, visited in increasing time."""

    def advance(self, now_s: float) -> None: ...

    async def read(self, machine: str, device_id: int,
                   block: ReadBlock) -> list[int] | list[bool]: ...


class SourceReader:
    """A Modbus driver's bus over a Source (the bytes a Modbus answer would carry)."""

    def __init__(self, source: Source) -> None:
        self.source = source

    async def read_blocks(self, machine: str, device_id: int, blocks: Sequence[ReadBlock],
                          timeout_s: float) -> list[Outcome]:
        return [to_wire(block, await self.source.read(machine, device_id, block))
                for block in blocks]

    def start_read_blocks(self, machine: str, device_id: int, blocks: Sequence[ReadBlock],
                          timeout_s: float,
                          finished: Callable[[list[Outcome] | Exception], None]) -> None:
        finish_later(self.read_blocks(machine, device_id, blocks, timeout_s), finished)

    async def read(self, machine: str, device_id: int,
                   block: ReadBlock) -> list[int] | list[bool]:
        return await self.source.read(machine, device_id, block)

    async def write(self, machine: str, device_id: int, table: Table, address: int,
                    values: Sequence[int]) -> None:
        raise DeviceError(machine, DeviceFailure.IO, "the past cannot be written")

    def close(self) -> None:
        return None


def history_drivers(source: Source, plant: Plant, agent: Agent) -> list[Driver]:
    """One driver reading every Modbus machine of the agent from `source`."""
    machines = {mid: plant.machines[mid] for mid in agent.machines
                if plant.machines[mid].connection.protocol == "modbus"}
    return [ModbusDriver(SourceReader(source), machines, agent)] if machines else []
