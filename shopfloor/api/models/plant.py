"""Plant model and live state as the API shows them (no connection secrets, no keys)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from shopfloor.api.live import LiveView
from shopfloor.api.models.common import PageInfo
from shopfloor.shared.contract import PointValue
from shopfloor.shared.plant import Machine, Plant, Point


class PointOut(BaseModel):
    name: str = Field(examples=["speed_pct"])
    protocol: str = Field(examples=["modbus"])
    table: str | None = Field(None, description="Modbus points: the register table")
    type: str
    unit: str = ""
    writable: bool
    min: float | None = None
    max: float | None = None


class ProductOut(BaseModel):
    id: str = Field(examples=["A"])
    code: int
    ideal_cycle_time_s: float
    name: str = ""


class MachineOut(BaseModel):
    id: str = Field(examples=["press1"])
    line: str = Field(examples=["line1"])
    name: str = ""
    points: list[PointOut]
    products: list[ProductOut]
    control: dict[str, str] = Field(description="control role -> point it writes",
                                    examples=[{"run": "run", "speed": "speed_pct"}])


class LineOut(BaseModel):
    id: str = Field(examples=["line1"])
    name: str = ""
    stations: list[str]
    buffer_capacity: dict[str, int] = {}


class ShiftOut(BaseModel):
    name: str
    start: dt.time
    end: dt.time
    days: list[str]


class PlantOut(BaseModel):
    site: str = Field(examples=["demo"])
    name: str = ""
    timezone: str = Field(examples=["Europe/Berlin"])
    lines: list[LineOut]
    machines: list[str] = Field(examples=[["press1", "weld1"]])
    shifts: list[ShiftOut]


class MachineStateOut(BaseModel):
    """Live state of one machine from the retained MQTT topics."""

    machine: str = Field(examples=["press1"])
    line: str = Field(examples=["line1"])
    state: str | None = Field(None, examples=["running"])
    reason: str | None = Field(None, examples=[None])
    code: int | None = None
    since: dt.datetime | None = Field(None, examples=["2026-11-25T20:00:00Z"])
    product: str | None = None
    work_order: str | None = None
    online: bool | None = Field(None, description="the machine's edge agent is online "
                                "(null: never heard)")
    maintenance: bool = False
    values: dict[str, PointValue] = Field(default_factory=dict,
                                          examples=[{"speed_pct": 100, "temperature": 41.5}])
    bad_quality: list[str] = Field(default_factory=list)
    updated_at: dt.datetime | None = Field(None, description="time of the last telemetry")


class MachineStatePage(BaseModel):
    items: list[MachineStateOut]
    page: PageInfo


def plant_out(plant: Plant, allowed_lines: frozenset[str] | None) -> PlantOut:
    lines = [ln for ln in plant.lines if allowed_lines is None or ln.id in allowed_lines]
    return PlantOut(
        site=plant.site.id, name=plant.site.name, timezone=plant.timezone,
        lines=[LineOut(id=ln.id, name=ln.name, stations=ln.stations,
                       buffer_capacity=ln.buffer_capacity) for ln in lines],
        machines=[m for m, spec in plant.machines.items()
                  if allowed_lines is None or spec.line in allowed_lines],
        shifts=[ShiftOut(name=s.name, start=s.start, end=s.end, days=[d.value for d in s.days])
                for s in plant.calendar.shifts],
    )


def machine_out(machine_id: str, machine: Machine) -> MachineOut:
    return MachineOut(
        id=machine_id, line=machine.line, name=machine.name,
        points=[PointOut(name=p.name, protocol=p.protocol, table=_table(p), type=p.type.value,
                         unit=p.unit, writable=p.writable, min=p.min, max=p.max)
                for p in machine.points],
        products=[ProductOut(id=p.id, code=p.code, ideal_cycle_time_s=p.ideal_cycle_time_s,
                             name=p.name) for p in machine.products],
        control=machine.control.model_dump(exclude_none=True),
    )


def state_out(machine_id: str, machine: Machine, live: LiveView) -> MachineStateOut:
    snap = live.machine(machine_id)
    state = snap.state
    return MachineStateOut(
        machine=machine_id, line=machine.line,
        state=state.state.value if state else None,
        reason=state.reason if state else None,
        code=state.code if state else None,
        since=state.since if state else None,
        product=state.product if state else None,
        work_order=state.work_order if state else None,
        online=live.online(machine_id), maintenance=live.in_maintenance(machine_id),
        values=snap.values, bad_quality=sorted(snap.quality), updated_at=snap.telemetry_ts,
    )


def _table(point: Point) -> str | None:
    table = getattr(point, "table", None)  # a Modbus point's; other protocols have none
    return None if table is None else str(table)
