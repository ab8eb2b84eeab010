"""Lines of simulated machines coupled by buffers, advanced in global virtual-time order.

A line's stations share buffers: station i takes parts from buffer i-1 and puts good
parts into buffer i (the first station has unlimited supply, the last an unlimited
sink). Events of all stations of a line are processed in time order from one heap, so
a run gives the same result however the caller slices time (pure, deterministic).
Machines not listed as a station of any line run alone (no buffers).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable

from shopfloor.shared.plant import Line, Plant
from shopfloor.sim.machine import Buffer, MachineModel
from shopfloor.sim.params import Behaviour
from shopfloor.sim.spec import SimMachineSpec

WORKPIECES_AT_ENDS = 2
"""Parts a buffer's count B_i (shared OEE.md: T_i - R_i - T_i+1) holds beyond its slots:
the upstream station's finished part while it is blocked, and the downstream station's
part in process (taken, not yet counted)."""


def buffer_slots(capacity: int) -> int:
    """Physical places of a buffer whose plant `buffer_capacity` bounds B_i: capacity - 2
    (so that the counted level never exceeds the capacity), at least 1."""
    return max(1, capacity - WORKPIECES_AT_ENDS)


class LineModel:
    """The stations of one line (or one lone machine) and the buffers between them."""

    def __init__(self, stations: list[MachineModel], capacities: list[int], fill: float):
        self.stations = stations
        slots = [buffer_slots(cap) for cap in capacities]
        self.buffers = [Buffer(n, round(n * fill)) for n in slots]
        for i, buffer in enumerate(self.buffers):
            stations[i].downstream = buffer
            stations[i + 1].upstream = buffer
        self._heap: list[tuple[float, int, int]] = []
        self._seq = 0
        for i in range(len(stations)):
            self.schedule(i)

    def schedule(self, index: int) -> None:
        due = self.stations[index].due
        if math.isfinite(due):
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, index))

    def advance(self, now_s: float) -> None:
        """Process every event due at or before `now_s`, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= now_s:
            due, _, index = heapq.heappop(heap)
            station = self.stations[index]
            if station.due != due:
                continue  # stale entry: the machine was rescheduled since
            station.step(due)
            self.schedule(index)
            self._wake_neighbours(index, due)

    def _wake_neighbours(self, index: int, now_s: float) -> None:
        for other in (index - 1, index + 1):
            if 0 <= other < len(self.stations) and self.stations[other].wake(now_s):
                self.schedule(other)
                self._wake_neighbours(other, now_s)

    def changed(self, index: int, now_s: float) -> None:
        """Call after a control write changed station `index`: reschedule and wake."""
        self.schedule(index)
        self._wake_neighbours(index, now_s)


class PlantModel:
    """Every simulated machine of a plant, grouped into lines. Pure: advance it with
    `advance(now_s)`; change controls through `control(machine_id)` then `changed()`."""

    def __init__(
        self,
        plant: Plant,
        seed: int,
        start_s: float,
        behaviour: Behaviour | None = None,
        machine_ids: Iterable[str] | None = None,
    ) -> None:
        self.behaviour = behaviour or Behaviour()
        wanted = set(plant.machines if machine_ids is None else machine_ids)
        self.machines: dict[str, MachineModel] = {}
        self.lines: list[LineModel] = []
        self._where: dict[str, tuple[LineModel, int]] = {}
        placed: set[str] = set()
        for line in plant.lines:
            ids = [m for m in line.stations if m in wanted and m in plant.machines]
            placed.update(ids)
            if ids:
                self._add_line(plant, ids, _capacities(line, ids, self.behaviour), seed, start_s)
        for mid in sorted(wanted - placed):
            if mid in plant.machines:
                self._add_line(plant, [mid], [], seed, start_s)

    def _add_line(
        self, plant: Plant, ids: list[str], caps: list[int], seed: int, start_s: float
    ) -> None:
        models = [
            MachineModel(
                SimMachineSpec.from_machine(mid, plant.machines[mid]),
                self.behaviour,
                random.Random(f"{seed}:{mid}"),
                start_s,
            )
            for mid in ids
        ]
        line = LineModel(models, caps, self.behaviour.buffer_fill)
        self.lines.append(line)
        for i, mid in enumerate(ids):
            self.machines[mid] = models[i]
            self._where[mid] = (line, i)

    def advance(self, now_s: float) -> None:
        for line in self.lines:
            line.advance(now_s)

    def changed(self, machine_id: str, now_s: float) -> None:
        """Tell the line that a control write changed this machine at `now_s`."""
        line, index = self._where[machine_id]
        line.changed(index, now_s)

    def line_mates(self, machine_id: str) -> list[str]:
        """The machines on the same line as `machine_id` (itself included)."""
        line, _ = self._where[machine_id]
        return [m.spec.machine_id for m in line.stations]


def _capacities(line: Line, ids: list[str], behaviour: Behaviour) -> list[int]:
    """Capacity of the buffer after each station but the last (named by its upstream)."""
    return [line.buffer_capacity.get(mid, behaviour.buffer_capacity) for mid in ids[:-1]]
