"""What the machine model needs from a plant file's machine entry, extracted once:
products and their ideal cycle times, the code map, counter widths, setpoint limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from shopfloor.shared.enums import DataType
from shopfloor.shared.plant import Machine, Point
from shopfloor.sim.codes import StateCodes


@dataclass(frozen=True)
class SimMachineSpec:
    """Static description of one simulated machine (from its plant file entry)."""

    machine_id: str
    cycle_times_s: dict[int, float] = field(default_factory=dict)
    """product code -> ideal cycle time (s)."""
    codes: StateCodes = StateCodes()
    total_bits: int = 32
    reject_bits: int = 32
    speed_limits: tuple[float, float] = (1.0, 200.0)

    @classmethod
    def from_machine(cls, machine_id: str, machine: Machine) -> SimMachineSpec:
        counters = machine.counters
        speed_point = machine.point(machine.control.speed) if machine.control.speed else None
        return cls(
            machine_id=machine_id,
            cycle_times_s={p.code: p.ideal_cycle_time_s for p in machine.products},
            codes=StateCodes.from_map(machine.state),
            total_bits=_bits(machine.point(counters.total) if counters else None),
            reject_bits=_bits(
                machine.point(counters.reject) if counters and counters.reject else None
            ),
            speed_limits=_limits(speed_point, (1.0, 200.0)),
        )

    @property
    def first_product(self) -> int | None:
        return min(self.cycle_times_s, default=None)

    def clamp_speed(self, speed_pct: float) -> float:
        low, high = self.speed_limits
        return min(max(speed_pct, low), high)


def _bits(point: Point | None) -> int:
    if point is None or point.type not in (DataType.UINT16, DataType.UINT32, DataType.UINT64):
        return 32
    return point.type.bits


def _limits(point: Point | None, default: tuple[float, float]) -> tuple[float, float]:
    if point is None:
        return default
    low = point.min if point.min is not None else default[0]
    high = point.max if point.max is not None else default[1]
    return (low, high)
