"""A simulated plant's past read like an OPC UA server: `NodeHistoryDriver` answers a
poll of an OPC UA machine's points from a `Source` (sim.history.History: every
device's node values at the instant the source was advanced to), so that
`edge.history.fill` runs the agent's own poll pipeline over it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from shopfloor.edge.drivers.base import Done, Driver, Reading, Sink, finish_later
from shopfloor.edge.errors import DeviceError
from shopfloor.shared.contract import PointValue as Value
from shopfloor.shared.enums import DeviceFailure
from shopfloor.shared.plant import Agent, Machine, Plant, Point


class NodeSource(Protocol):
    """OPC UA machines' values at past instants, visited in increasing time."""

    def advance(self, now_s: float) -> None: ...

    def read_values(self, machine: str, points: Iterable[Point]) -> dict[str, Value]: ...


class NodeHistoryDriver:
    """A polled driver (`base.Driver`) over a Source's OPC UA machines."""

    protocol = "opcua"
    pushes = False

    def __init__(self, source: NodeSource, machines: Mapping[str, Machine]) -> None:
        self.source = source
        self.machines = tuple(machines)

    def plan(self, machine_id: str, points: Sequence[Point]) -> tuple[Point, ...]:
        return tuple(points)

    async def read(self, machine_id: str, plans: Sequence[tuple[Point, ...]]) -> Reading:
        points = [p for plan in plans for p in plan]
        return Reading(self.source.read_values(machine_id, points), set())

    def start_read(self, machine_id: str, plans: Sequence[tuple[Point, ...]],
                   done: Done) -> None:
        finish_later(self.read(machine_id, plans), done)

    async def read_point(self, machine_id: str, point: Point) -> Value:
        return self.source.read_values(machine_id, [point])[point.name]

    async def write(self, machine_id: str, point: Point, value: Value) -> Value:
        raise DeviceError(machine_id, DeviceFailure.IO, "the past cannot be written")

    async def run(self, sink: Sink) -> None:
        return None

    def close(self) -> None:
        return None


def history_drivers(source: NodeSource, plant: Plant, agent: Agent) -> list[Driver]:
    """One driver reading every OPC UA machine of the agent from `source`."""
    machines = {mid: plant.machines[mid] for mid in agent.machines
                if plant.machines[mid].connection.protocol == "opcua"}
    return [NodeHistoryDriver(source, machines)] if machines else []
