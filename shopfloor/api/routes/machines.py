"""Live machine state, kept current from the retained MQTT topics (no query per request)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shopfloor.api.deps import LiveDep, MachineDep, PlantDep, ReaderDep, visible_line
from shopfloor.api.models.common import ERRORS, NOT_FOUND, page_info
from shopfloor.api.models.plant import MachineStateOut, MachineStatePage, state_out
from shopfloor.api.routes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["state"], responses=ERRORS)


@router.get("/state", response_model=MachineStatePage, summary="Live state of all machines")
async def list_state(
    plant: PlantDep, live: LiveDep, principal: ReaderDep,
    line: Annotated[str | None, Query(description="only this line", max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> MachineStatePage:
    """Every machine the key may see (in plant-file order), with state, reason, product,
    last values and whether its edge agent is online."""
    if line is not None:
        visible_line(plant, principal, line)
    ids = [m for m, spec in plant.machines.items()
           if principal.may_see_line(spec.line) and (line is None or spec.line == line)]
    chosen = ids[offset:offset + limit]
    items = [state_out(m, plant.machines[m], live) for m in chosen]
    return MachineStatePage(items=items,
                            page=page_info(limit, offset, len(chosen), offset + limit < len(ids)))


@router.get("/machines/{machine}/state", response_model=MachineStateOut, responses=NOT_FOUND,
            summary="Live state of one machine")
async def get_state(live: LiveDep, principal: ReaderDep,
                    machine: MachineDep) -> MachineStateOut:
    return state_out(machine.id, machine.spec, live)
