"""The simulated plant's past: the same model the simulator serves, started at an earlier
instant `origin_s` and advanced by the caller, with the register image of every device
at each instant. `Simulator(origin_s=...)` continues exactly this model from the moment
it starts (same seed, same origin: the model gives the same result however time is
sliced), so history and live data join without a jump in the counters.

The edge reads the past through `read()` (`shopfloor.edge.drivers.modbus.history`): its
own poll pipeline turns the images into telemetry (`shopfloor.edge.history`). Pure: no
I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shopfloor.shared.plant import Plant, Point
from shopfloor.shared.protocols.base import PointValue as Value
from shopfloor.shared.protocols.modbus.enums import Table
from shopfloor.sim.device import SimDevice
from shopfloor.sim.errors import Refused, SimError
from shopfloor.sim.line import PlantModel
from shopfloor.sim.params import Behaviour
from shopfloor.sim.served import served_ids


class History:
    """Every simulated machine of `plant` (all, or `machines`) from `origin_s` on."""

    def __init__(self, plant: Plant, seed: int, origin_s: float, *,
                 machines: Iterable[str] | None = None,
                 behaviour: Behaviour | None = None) -> None:
        self.plant = plant
        self.origin_s = origin_s
        self.now_s = origin_s
        ids = list(served_ids(plant, None) if machines is None else machines)
        self.model = PlantModel(plant, seed, origin_s, behaviour, ids)
        self.devices: dict[str, SimDevice] = {
            mid: SimDevice(mid, plant.machines[mid], self.model.machines[mid], origin_s)
            for mid in ids
        }

    def advance(self, now_s: float) -> None:
        """Advance the model to `now_s` and copy it into every register image."""
        if now_s < self.now_s:
            raise SimError(f"history cannot go back from {self.now_s} to {now_s}")
        self.now_s = now_s
        self.model.advance(now_s)
        for device in self.devices.values():
            device.refresh(now_s, analog=True)

    def read_values(self, machine: str, points: Iterable[Point]) -> dict[str, Value]:
        """An OPC UA machine's point values as its nodes show them now."""
        nodes = self.devices[machine].nodes
        if nodes is None:
            raise SimError(f"{machine} is not an OPC UA machine")
        return {p.name: nodes.get(p) for p in points}

    async def read(self, machine: str, device_id: int, block: _Block) -> list[int] | list[bool]:
        """The registers (or bits) of one read block as the device shows them now."""
        try:
            return self.devices[machine].registers.read(block.table, block.address, block.count)
        except (KeyError, Refused) as exc:
            raise SimError(f"{machine}: cannot read {block.table} {block.address}: {exc}") from exc

    def stock(self) -> dict[str, dict[str, int]]:
        """Parts on each line now, by buffer (named by its upstream station), as the WIP
        engine counts them (B_i): the parts in the buffer, the upstream station's finished
        part while it is blocked, and the part the downstream station holds (taken, not
        yet counted). What a stocktake at this instant counts."""
        by_first = {line.stations[0].spec.machine_id: line for line in self.model.lines}
        out: dict[str, dict[str, int]] = {}
        for plant_line in self.plant.lines:
            ids = [m for m in plant_line.stations if m in self.devices]
            line = by_first.get(ids[0]) if ids else None
            if line is None or not line.buffers:
                continue
            out[plant_line.id] = {
                ids[i]: buffer.count + int(line.stations[i].finished_part)
                + int(line.stations[i + 1].holding_part)
                for i, buffer in enumerate(line.buffers)
            }
        return out


class _Block(Protocol):
    """What `read` needs of a read block (shopfloor.edge.drivers.modbus.plan.ReadBlock has it)."""

    @property
    def table(self) -> Table: ...

    @property
    def address(self) -> int: ...

    @property
    def count(self) -> int: ...
