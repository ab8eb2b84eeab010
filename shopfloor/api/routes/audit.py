"""The command audit (InfluxDB `control_audit`), newest first, with filters."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from shopfloor.api import alarm_bus, queries
from shopfloor.api.audit import decode_json
from shopfloor.api.commands import Outcome
from shopfloor.api.control import Action
from shopfloor.api.deps import AuditorDep, InfluxDep, PlantDep, visible_line, visible_machine
from shopfloor.api.models.common import (
    ERRORS,
    NOT_FOUND,
    UNAVAILABLE,
    UNPROCESSABLE,
    ApiTime,
    page_info,
)
from shopfloor.api.models.history import AuditEntryOut, AuditPage
from shopfloor.api.queries import AuditFilter, Window
from shopfloor.api.routes import PREFIX
from shopfloor.api.security import Principal
from shopfloor.shared.contract import utc_now
from shopfloor.shared.plant import Plant

router = APIRouter(
    prefix=PREFIX, tags=["audit"],
    responses={**ERRORS, **NOT_FOUND, **UNPROCESSABLE, **UNAVAILABLE})
IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
AUDIT_ACTIONS = [a.value for a in Action] + ["stocktake", "classify", "reclassify", "split",
                                             *alarm_bus.AUDIT_ACTIONS.values()]
AUDIT_OUTCOMES = [o.value for o in Outcome if o is not Outcome.PENDING] + ["sent", "refused"]
DEFAULT_WINDOW = dt.timedelta(days=1)


@router.get("/audit", response_model=AuditPage, summary="The command audit")
async def get_audit(
    plant: PlantDep, influx: InfluxDep, principal: AuditorDep,
    machine: Annotated[str | None, Query(pattern=IDENT)] = None,
    line: Annotated[str | None, Query(pattern=IDENT)] = None,
    action: Annotated[str | None, Query(description=" | ".join(AUDIT_ACTIONS),
                                        pattern="^(" + "|".join(AUDIT_ACTIONS) + ")$")] = None,
    outcome: Annotated[str | None, Query(description=" | ".join(AUDIT_OUTCOMES),
                                         pattern="^(" + "|".join(AUDIT_OUTCOMES) + ")$")] = None,
    requested_by: Annotated[str | None, Query(pattern=IDENT,
                                               description="the API key's name")] = None,
    command_id: Annotated[str | None, Query(max_length=64,
                                            pattern=r"^[A-Za-z0-9_.:-]+$")] = None,
    start: Annotated[ApiTime | None, Query(description="default: end - 1 day")] = None,
    end: Annotated[ApiTime | None, Query(description="default: now")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> AuditPage:
    """Who did what, when, with which value and outcome. `sent` entries mark a command
    published to the edge; `refused` an action the API refused before sending."""
    _check_scope(plant, principal, machine, line)
    window = Window.of(start, end, DEFAULT_WINDOW, utc_now())
    filters = AuditFilter(machine=machine, line=line, action=action, outcome=outcome,
                          requested_by=requested_by, command_id=command_id,
                          lines_allowed=principal.lines)
    rows = await influx.rows(queries.audit(plant.site.id, filters, window, limit + 1, offset))
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(items=[_entry(r) for r in rows],
                     page=page_info(limit, offset, len(rows), more))


def _check_scope(plant: Plant, principal: Principal, machine: str | None,
                 line: str | None) -> None:
    if machine is not None:
        visible_machine(plant, principal, machine)
    if line is not None:
        visible_line(plant, principal, line)


def _entry(row: dict[str, Any]) -> AuditEntryOut:
    return AuditEntryOut(
        time=dt.datetime.fromtimestamp(row["time"] / 1000, dt.UTC),
        line=row.get("line") or None, machine=row.get("machine") or None,
        action=row.get("action") or "", outcome=row.get("outcome") or "",
        requested_by=row.get("requested_by") or "", command_id=row.get("command_id") or None,
        point=row.get("point") or None, value=decode_json(row.get("value")),
        readback=decode_json(row.get("readback")), detail=row.get("detail") or None,
        late=bool(row.get("late")),
    )
