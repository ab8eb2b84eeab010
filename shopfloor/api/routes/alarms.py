"""Alarms (docs/alarms.md) as the alarm component stored them: the current state of every
alarm instance, and the history of transitions, with filters. Read-only for now."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from shopfloor.api import queries
from shopfloor.api.deps import InfluxDep, PlantDep, ReaderDep, visible_line, visible_machine
from shopfloor.api.models.alarms import AlarmHistoryPage, AlarmsOut, AlarmTransitionOut
from shopfloor.api.models.common import (
    ERRORS,
    NOT_FOUND,
    UNAVAILABLE,
    UNPROCESSABLE,
    ApiTime,
    page_info,
)
from shopfloor.api.queries import AlarmFilter, Window
from shopfloor.api.routes import PREFIX
from shopfloor.api.security import Principal
from shopfloor.shared.alarm_rules import RuleKind, Severity
from shopfloor.shared.contract import utc_now
from shopfloor.shared.enums import AlarmState
from shopfloor.shared.plant import Plant

router = APIRouter(
    prefix=PREFIX, tags=["alarms"],
    responses={**ERRORS, **NOT_FOUND, **UNPROCESSABLE, **UNAVAILABLE})
IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_WINDOW = dt.timedelta(days=1)


def _filter(plant: Plant, principal: Principal, machine: str | None, line: str | None,
            rule: RuleKind | None, severity: Severity | None) -> AlarmFilter:
    if machine is not None:
        visible_machine(plant, principal, machine)
    if line is not None:
        visible_line(plant, principal, line)
    return AlarmFilter(machine=machine, line=line, rule=rule, severity=severity,
                       lines_allowed=principal.lines)


@router.get("/alarms", response_model=AlarmsOut, summary="Alarms not in normal")
async def get_alarms(
    plant: PlantDep, influx: InfluxDep, principal: ReaderDep,
    machine: Annotated[str | None, Query(pattern=IDENT)] = None,
    line: Annotated[str | None, Query(pattern=IDENT)] = None,
    rule: RuleKind | None = None,
    severity: Severity | None = None,
    state: AlarmState | None = None,
) -> AlarmsOut:
    """Every alarm instance whose state is not `normal` (or is `state`), newest first."""
    filters = _filter(plant, principal, machine, line, rule, severity)
    rows = await influx.rows(queries.alarm_latest(plant.site.id, filters))
    items = [_transition(r) for r in rows]
    items = [i for i in items if (i.to_state is state if state is not None
                                  else i.to_state is not AlarmState.NORMAL)]
    return AlarmsOut(items=sorted(items, key=lambda i: i.time, reverse=True))


@router.get("/alarms/history", response_model=AlarmHistoryPage,
            summary="Alarm transitions")
async def get_alarm_history(
    plant: PlantDep, influx: InfluxDep, principal: ReaderDep,
    machine: Annotated[str | None, Query(pattern=IDENT)] = None,
    line: Annotated[str | None, Query(pattern=IDENT)] = None,
    rule: RuleKind | None = None,
    severity: Severity | None = None,
    start: Annotated[ApiTime | None, Query(description="default: end - 1 day")] = None,
    end: Annotated[ApiTime | None, Query(description="default: now")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> AlarmHistoryPage:
    """Transitions (raise, clear, ack, shelve, ...) in the window, newest first."""
    filters = _filter(plant, principal, machine, line, rule, severity)
    window = Window.of(start, end, DEFAULT_WINDOW, utc_now())
    rows = await influx.rows(queries.alarm_history(plant.site.id, filters, window,
                                                   limit + 1, offset))
    more = len(rows) > limit
    rows = rows[:limit]
    return AlarmHistoryPage(items=[_transition(r) for r in rows],
                            page=page_info(limit, offset, len(rows), more))


def _transition(row: dict[str, Any]) -> AlarmTransitionOut:
    return AlarmTransitionOut(
        time=dt.datetime.fromtimestamp(row["time"] / 1000, dt.UTC),
        line=row.get("line") or "", machine=row.get("machine") or "",
        rule=row["rule"], severity=row["severity"], kind=row["kind"],
        from_state=row["from_state"], to_state=row["to_state"], by=row.get("by") or "",
        comment=row.get("comment") or "")
