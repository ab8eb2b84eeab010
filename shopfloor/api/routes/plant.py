"""The plant model: site, lines, machines, points, products, shifts."""

from __future__ import annotations

from fastapi import APIRouter

from shopfloor.api.deps import MachineDep, PlantDep, ReaderDep
from shopfloor.api.models.common import ERRORS, NOT_FOUND
from shopfloor.api.models.plant import MachineOut, PlantOut, machine_out, plant_out
from shopfloor.api.routes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["plant"], responses=ERRORS)


@router.get("/plant", response_model=PlantOut, summary="The plant model")
async def get_plant(plant: PlantDep, principal: ReaderDep) -> PlantOut:
    """Site, lines (stations in flow order), machine ids and the shift calendar. A key
    restricted to lines sees only those lines and their machines."""
    return plant_out(plant, principal.lines)


@router.get("/machines/{machine}", response_model=MachineOut, responses=NOT_FOUND,
            summary="One machine's definition")
async def get_machine(principal: ReaderDep, machine: MachineDep) -> MachineOut:
    """Points (with writable/min/max), products and control mapping of a machine."""
    return machine_out(machine.id, machine.spec)
