"""KPIs on demand from the KPI engine: OEE and its components for any window, a shift
instance (named, or the one running now) or a rolling period; WIP per line and buffer
with Little's law and work-order progress."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from shopfloor.api.deps import LineDep, MachineDep, ReaderDep, RuntimeDep
from shopfloor.api.errors import Invalid
from shopfloor.api.kpi import KpiService, Period
from shopfloor.api.models.common import ERRORS, NOT_FOUND, UNAVAILABLE, UNPROCESSABLE, ApiTime
from shopfloor.api.queries import Window
from shopfloor.api.routes import PREFIX
from shopfloor.kpi.oee import OeeResult
from shopfloor.kpi.wip import WipResult
from shopfloor.kpi.workorders import OrderProgress
from shopfloor.shared.contract import utc_now

router = APIRouter(
    prefix=PREFIX, tags=["kpi"],
    responses={**ERRORS, **NOT_FOUND, **UNPROCESSABLE, **UNAVAILABLE})


class PeriodKind(StrEnum):
    WINDOW = "window"  # start/end (default: the last hour)
    SHIFT = "shift"  # `shift` on production date `date` (default: the shift running now)
    ROLLING = "rolling"  # the last `rolling_s` seconds


class OeeOut(BaseModel):
    """OEE of one machine (ISO 22400-2 names; docs/oee.md). Ratios unrounded, null when
    undefined; times in seconds."""

    machine: str = Field(examples=["press1"])
    line: str = Field(examples=["line1"])
    start: dt.datetime
    end: dt.datetime
    shift: str | None = Field(None, examples=["2026-11-25/early"])
    rollup_minutes: int = Field(description="minutes taken from stored rollups")
    result: OeeResult


class WipOut(BaseModel):
    line: str = Field(examples=["line1"])
    start: dt.datetime
    end: dt.datetime
    wip: WipResult
    orders: list[OrderProgress]


def _period(service: KpiService, kind: PeriodKind, start: dt.datetime | None,
            end: dt.datetime | None, shift: str | None, date: dt.date | None,
            rolling_s: int) -> Period:
    now = utc_now()
    if kind is PeriodKind.SHIFT:
        return service.shift(shift, date, now)
    if shift is not None or date is not None:
        raise Invalid("shift and date need period=shift", "bad_window")
    if kind is PeriodKind.ROLLING:
        return Period(now - dt.timedelta(seconds=rolling_s), now)
    window = Window.of(start, end, dt.timedelta(hours=1), now)
    return Period(window.start, window.end)


Kind = Annotated[PeriodKind, Query(description="window | shift | rolling")]
Start = Annotated[ApiTime | None, Query(description="period=window: start (ISO 8601)")]
End = Annotated[ApiTime | None, Query(description="period=window: end (default now)")]
ShiftName = Annotated[str | None, Query(max_length=64, description="period=shift: name "
                                        "(default: the shift running now)")]
ShiftDate = Annotated[dt.date | None, Query(description="period=shift: production date")]
Rolling = Annotated[int, Query(ge=60, le=31 * 86400, description="period=rolling: seconds")]


@router.get("/machines/{machine}/oee", response_model=OeeOut, summary="OEE of a machine")
async def machine_oee(runtime: RuntimeDep, principal: ReaderDep,
                      machine: MachineDep, period: Kind = PeriodKind.WINDOW,
                      start: Start = None, end: End = None, shift: ShiftName = None,
                      date: ShiftDate = None, rolling_s: Rolling = 3600) -> OeeOut:
    service = runtime.kpi
    chosen = _period(service, period, start, end, shift, date, rolling_s)
    report = await service.oee(machine.id, chosen)
    return OeeOut(machine=machine.id, line=report.line, start=chosen.start, end=chosen.end,
                  shift=report.shift, rollup_minutes=report.rollup_minutes,
                  result=report.result)


@router.get("/lines/{line}/wip", response_model=WipOut, summary="WIP of a line")
async def line_wip(runtime: RuntimeDep, principal: ReaderDep,
                   line: LineDep, period: Kind = PeriodKind.WINDOW, start: Start = None,
                   end: End = None, shift: ShiftName = None, date: ShiftDate = None,
                   rolling_s: Rolling = 3600) -> WipOut:
    """WIP at the period's end per buffer and line (from the latest stocktake), mean WIP,
    throughput and lead time (Little's law) over the period, and work-order progress."""
    service = runtime.kpi
    chosen = _period(service, period, start, end, shift, date, rolling_s)
    report = await service.wip(line.id, chosen)
    return WipOut(line=line.id, start=chosen.start, end=chosen.end, wip=report.wip,
                  orders=list(report.orders))
