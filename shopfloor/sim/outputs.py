"""Which value each point of a simulated machine shows, from the machine model.

Points with a role in the plant file (state point, counters, control setpoints) show the
model's state; other points are given plausible synthetic values by their name:
`*alarm*` the active fault's code, `*cycle*` the last cycle time (s), `*temp*`
temperature (degC), `*power*` power (kW), `*energy*` energy (kWh), `*door*` open during
repairs and changeovers; any other number wanders inside its min/max (or 0..100).
Writable points without a role keep what was last written. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from shopfloor.shared.enums import DataType
from shopfloor.shared.plant import Machine, Point
from shopfloor.shared.protocols.base import PointValue as Value
from shopfloor.sim.machine import MachineModel, Phase
from shopfloor.sim.signals import noise

Source = Callable[[MachineModel, float], Value]


class Refresh(Enum):
    EVENT = "event"
    """Changes only at model events: re-encode when the model's change count moves."""
    ANALOG = "analog"
    """Changes with time: re-encode at the simulator's analog period."""
    HELD = "held"
    """Set once at start, then only by client writes."""


@dataclass(frozen=True)
class Output:
    point: Point
    source: Source
    refresh: Refresh


def outputs_for(machine: Machine) -> list[Output]:
    """One Output per point of the machine, in point order."""
    roles = _roles(machine)
    out = []
    for index, point in enumerate(machine.points):
        if point.name in roles:
            source, refresh = roles[point.name]
        elif point.writable:
            source, refresh = _initial(point), Refresh.HELD
        else:
            source, refresh = _by_name(point, index)
        out.append(Output(point, source, refresh))
    return out


def _roles(machine: Machine) -> dict[str, tuple[Source, Refresh]]:
    ev = Refresh.EVENT
    roles: dict[str, tuple[Source, Refresh]] = {}
    if machine.state is not None:
        roles[machine.state.point] = (lambda m, t: m.state_code(), ev)
    if machine.counters is not None:
        roles[machine.counters.total] = (lambda m, t: m.total, ev)
        if machine.counters.reject:
            roles[machine.counters.reject] = (lambda m, t: m.reject, ev)
    control = machine.control
    sources: dict[str | None, Source] = {
        control.run: lambda m, t: m.controls.run,
        control.speed: lambda m, t: m.controls.speed_pct,
        control.product: lambda m, t: m.controls.product or 0,
        control.maintenance: lambda m, t: m.controls.maintenance,
        control.work_order: lambda m, t: m.controls.work_order,
    }
    roles.update({name: (src, ev) for name, src in sources.items() if name})
    if control.alarm_ack:
        roles[control.alarm_ack] = (lambda m, t: False, Refresh.HELD)
    return roles


def _initial(point: Point) -> Source:
    if point.type is DataType.BOOL:
        return lambda m, t: False
    if point.type is DataType.STRING:
        return lambda m, t: ""
    start = point.min if point.min is not None and point.min > 0 else 0
    return lambda m, t: start


_DOOR_OPEN = (Phase.REPAIR, Phase.SETUP)


def _by_name(point: Point, index: int) -> tuple[Source, Refresh]:
    name = point.name.lower()
    if point.type is DataType.BOOL:
        if "door" in name:
            return (lambda m, t: m.phase in _DOOR_OPEN), Refresh.EVENT
        return (lambda m, t: False), Refresh.HELD
    if point.type is DataType.STRING:
        return (lambda m, t: m.spec.machine_id), Refresh.HELD
    if point.type is DataType.DATETIME:  # the device's clock (virtual time), UTC
        return (lambda m, t: dt.datetime.fromtimestamp(t, dt.UTC).isoformat()
                .replace("+00:00", "Z")), Refresh.ANALOG
    named: list[tuple[str, Source, Refresh]] = [
        ("alarm", lambda m, t: m.alarm_code(), Refresh.EVENT),
        ("cycle", lambda m, t: round(m.last_cycle_s, 3), Refresh.EVENT),
        ("temp", lambda m, t: m.signals.temperature_at(t), Refresh.ANALOG),
        ("power", lambda m, t: m.signals.power_at(t), Refresh.ANALOG),
        ("energy", lambda m, t: m.signals.energy_at(t), Refresh.ANALOG),
    ]
    for word, source, refresh in named:
        if word in name:
            return source, refresh
    return _wander(point, index), Refresh.ANALOG


def _wander(point: Point, index: int) -> Source:
    """A value that drifts every 10 s inside the point's min/max (default 0..100)."""
    low = point.min if point.min is not None else 0.0
    high = point.max if point.max is not None else 100.0
    middle, half = (low + high) / 2, (high - low) / 2

    def source(m: MachineModel, t: float) -> Value:
        value = middle + 0.8 * half * noise(m.signals.salt + 7 + index, int(t // 10))
        return round(value) if point.type.is_integer else value

    return source
