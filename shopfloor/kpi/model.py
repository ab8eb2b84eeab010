"""Inputs of the pure KPI engine: samples as they come from telemetry, and the slice of
the plant model one machine's KPIs need (`KpiMachineSpec`), plus the engine's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shopfloor.kpi.errors import KpiError
from shopfloor.shared.enums import MachineState
from shopfloor.shared.plant import Machine, Plant

PointValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Sample:
    """One telemetry sample of one machine: event time `ts_ms` (UTC epoch ms), its `seq`,
    point values by point name, and the names of points whose quality was bad."""

    ts_ms: int
    values: Mapping[str, PointValue]
    seq: int = 0
    bad: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class KpiSettings:
    """Engine thresholds. `t_minor_s`: a stop shorter than this is a minor stop (L3).
    `startup_s`: running time after a setup whose scrap is startup loss (L6).
    `gap_factor`: a gap between samples longer than gap_factor x poll period is UNK.
    `planned_reasons`: reasons of `planned_stop` that count as planned downtime (None:
    every reason the plant file maps to planned_stop). Work bounds of one request, per
    machine: `max_raw_s` of raw telemetry (time without a final stored rollup),
    `max_wip_window_s` of WIP window (it is computed per minute)."""

    t_minor_s: float = 120.0
    startup_s: float = 600.0
    gap_factor: float = 3.0
    p_suspect: float = 1.02
    p_suspect_min_parts: float = 100.0
    coverage_null: float = 0.80
    coverage_degraded: float = 0.95
    planned_reasons: frozenset[str | None] | None = None
    max_raw_s: float = 2 * 86_400.0
    max_wip_window_s: float = 31 * 86_400.0

    @staticmethod
    def of(plant: Plant) -> KpiSettings:
        """The plant file's thresholds (collector.minor_stop_s, collector.startup_s) and
        work bounds (collector.kpi_max_raw_s, collector.kpi_max_wip_window_s)."""
        c = plant.collector
        return KpiSettings(t_minor_s=c.minor_stop_s, startup_s=c.startup_s,
                        max_raw_s=c.kpi_max_raw_s, max_wip_window_s=c.kpi_max_wip_window_s)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    code: int
    pri_s: float  # ideal cycle time, seconds per part (ISO 22400 PRI)


@dataclass(frozen=True, slots=True)
class KpiMachineSpec:
    """What the engine needs of one machine; built from the plant by `from_plant`."""

    id: str
    line: str
    poll_ms: int
    state_point: str | None
    codes: Mapping[int, tuple[MachineState, str | None]]
    unmapped: tuple[MachineState, str | None]
    total_point: str | None = None
    total_width: int = 2**32
    reject_point: str | None = None
    reject_width: int = 2**32
    product_point: str | None = None
    work_order_point: str | None = None
    products: Mapping[int, Product] = field(default_factory=dict)
    value_poll_ms: int = 1000  # slowest poll period of the product / work order points

    @property
    def pri_min_s(self) -> float | None:
        return min((p.pri_s for p in self.products.values()), default=None)

    @property
    def default_product(self) -> int | None:
        """The product code assumed when no product point says otherwise (one product)."""
        return next(iter(self.products)) if len(self.products) == 1 else None

    @staticmethod
    def from_plant(plant: Plant, machine_id: str) -> KpiMachineSpec:
        machine = plant.machines.get(machine_id)
        if machine is None:
            raise KpiError(f"unknown machine {machine_id!r} (known: {sorted(plant.machines)})")
        return _spec(machine_id, machine)


def _width(machine: Machine, point: str | None) -> int:
    p = machine.point(point) if point else None
    bits = p.type.bits if p is not None and p.type.is_integer else 32
    return 2**bits


def _spec(machine_id: str, machine: Machine) -> KpiMachineSpec:
    state = machine.state
    state_point = state.point if state is not None else None
    poll_s = machine.poll_interval_s
    if state_point is not None and (p := machine.point(state_point)) is not None:
        poll_s = machine.interval_of(p)
    codes = {k: (v.state, v.reason) for k, v in state.codes.items()} if state else {}
    unmapped = (state.unmapped.state, state.unmapped.reason) if state else (
        MachineState.STOPPED, "unmapped_code")
    value_polls = [machine.interval_of(p) for name in (machine.control.product,
                   machine.control.work_order) if name and (p := machine.point(name))]
    counters = machine.counters
    total = counters.total if counters else None
    reject = counters.reject if counters else None
    return KpiMachineSpec(
        id=machine_id,
        line=machine.line,
        poll_ms=max(1, round(poll_s * 1000)),
        state_point=state_point,
        codes=codes,
        unmapped=unmapped,
        total_point=total,
        total_width=_width(machine, total),
        reject_point=reject,
        reject_width=_width(machine, reject),
        product_point=machine.control.product,
        work_order_point=machine.control.work_order,
        products={p.code: Product(p.id, p.code, p.ideal_cycle_time_s) for p in machine.products},
        value_poll_ms=max(1, round(max(value_polls, default=poll_s) * 1000)),
    )
