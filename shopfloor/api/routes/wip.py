"""WIP per line: the stocktake (a physical count that anchors the WIP engine)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from shopfloor.api import audit as audit_log
from shopfloor.api import stocktake
from shopfloor.api.deps import LineDep, RuntimeDep, require
from shopfloor.api.models.common import ERRORS, NOT_FOUND, UNAVAILABLE, UNPROCESSABLE
from shopfloor.api.models.control import StocktakeIn, StocktakeOut
from shopfloor.api.routes import PREFIX
from shopfloor.api.security import Permission, Principal
from shopfloor.shared.contract import utc_now

router = APIRouter(
    prefix=PREFIX, tags=["wip"],
    responses={**ERRORS, **NOT_FOUND, **UNPROCESSABLE, **UNAVAILABLE})
Stocktaker = Annotated[Principal, Depends(require(Permission.STOCKTAKE))]


@router.post("/lines/{line}/stocktake", response_model=StocktakeOut, status_code=201,
             summary="Set a line's WIP anchor count")
async def post_stocktake(body: StocktakeIn, runtime: RuntimeDep, principal: Stocktaker,
                         line: LineDep) -> StocktakeOut:
    """Stores the count (and optional per-buffer counts) in `wip_anchor`; the WIP engine
    counts from the latest stocktake. Written before answering (503 if the database is
    down) and audited."""
    now = utc_now()
    take = stocktake.Stocktake(line.id, body.at or now, body.count, body.buffers)
    stocktake.check(line, body.count, body.buffers, take.at, now, runtime.plant.api)
    await runtime.influx.write(stocktake.to_lines(runtime.plant.site.id, take))
    runtime.audit.add(audit_log.AuditEntry(
        site=runtime.plant.site.id, line=line.id, machine="", action="stocktake",
        outcome="done", requested_by=principal.name, value=body.count,
        detail=f"buffers {body.buffers}" if body.buffers else ""))
    return StocktakeOut(line=line.id, count=body.count, buffers=body.buffers, at=take.at)
