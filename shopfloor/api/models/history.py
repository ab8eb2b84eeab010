"""History, state changes, downtime episodes and audit entries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from shopfloor.api.models.common import PageInfo
from shopfloor.shared.contract import PointValue


class HistoryRow(BaseModel):
    time: dt.datetime = Field(examples=["2026-11-25T20:00:00Z"])
    values: dict[str, PointValue | None] = Field(examples=[{"speed_pct": 98.5}])


class HistoryOut(BaseModel):
    machine: str = Field(examples=["press1"])
    start: dt.datetime
    end: dt.datetime
    interval_s: int | None = Field(None, description="bucket width; null = raw samples")
    aggregation: str | None = Field(None, examples=["mean"])
    points: list[str] = Field(examples=[["speed_pct"]])
    rows: list[HistoryRow]
    page: PageInfo


class StateChangeOut(BaseModel):
    time: dt.datetime = Field(description="when the state began")
    state: str = Field(examples=["stopped"])
    reason: str | None = Field(None, examples=["jam"])
    code: int | None = None
    product: str | None = None
    work_order: str | None = None


class StateChangesOut(BaseModel):
    machine: str
    start: dt.datetime
    end: dt.datetime
    items: list[StateChangeOut]
    page: PageInfo


class EpisodeOut(BaseModel):
    start: dt.datetime
    end: dt.datetime
    duration_s: float = Field(examples=[184.2])
    state: str = Field(examples=["stopped"])
    reason: str | None = Field(None, examples=["jam"])
    ongoing: bool = Field(description="still going at the end of the window")


class DowntimeOut(BaseModel):
    machine: str
    start: dt.datetime
    end: dt.datetime
    total_s: float = Field(description="sum of the episodes' durations in the window")
    items: list[EpisodeOut]
    page: PageInfo


class AuditEntryOut(BaseModel):
    time: dt.datetime
    line: str | None = None
    machine: str | None = None
    action: str = Field(examples=["setpoint"])
    outcome: str = Field(examples=["done"])
    requested_by: str = Field(examples=["mes"])
    command_id: str | None = None
    point: str | None = None
    value: Any = Field(None, examples=[95])
    readback: Any = Field(None, examples=[95])
    detail: str | None = None
    late: bool = False


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    page: PageInfo
