"""Request and response shapes of the downtime routes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shopfloor.api.downtime.events import Event
from shopfloor.api.models.common import ApiTime, PageInfo
from shopfloor.shared.reasons import ReasonTree

ReasonCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                  examples=["jam"])]
Comment = Annotated[str, Field(max_length=500)]


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


class PartOut(BaseModel):
    start: dt.datetime
    end: dt.datetime | None = Field(description="null while the event lasts (last part)")
    reason: str | None = Field(description="a code of the line's reason tree; null: "
                                           "unclassified", examples=["jam"])
    category: str | None = None
    loss: str | None = Field(None, description="unplanned | setup | planned")
    by: str = Field(description="the API key's name, `plc` when the PLC reason mapped")
    comment: str = ""


class EventOut(BaseModel):
    id: str = Field(examples=["press1:1764720000000"])
    line: str
    machine: str
    state: str = Field(examples=["stopped"])
    plc_reason: str | None = Field(examples=["jam"])
    start: dt.datetime
    end: dt.datetime | None = Field(description="null while the event lasts")
    duration_s: float = Field(description="so far, while it lasts")
    classified: bool
    parts: list[PartOut]


class EventPage(BaseModel):
    items: list[EventOut]
    page: PageInfo


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: ReasonCode
    part: Annotated[int, Field(ge=0, le=99, description="which part (0: the first)")] = 0
    comment: Comment = ""


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: list[ApiTime] = Field(min_length=1, max_length=20,
                                  description="instants inside the event (ISO 8601)")
    reasons: list[ReasonCode | None] | None = Field(
        None, description="optional: a reason per resulting part (null keeps it)")
    comment: Comment = ""


class ReasonOut(BaseModel):
    code: str
    name: str
    loss: str


class CategoryOut(BaseModel):
    id: str
    name: str
    reasons: list[ReasonOut]


class TreeOut(BaseModel):
    line: str
    threshold_s: float
    categories: list[CategoryOut]


def event_out(event: Event, tree: ReasonTree, now_ms: int) -> EventOut:
    parts = []
    for i, part in enumerate(event.parts):
        end = event.part_end(i)
        found = tree.reasons.get(part.reason) if part.reason else None
        parts.append(PartOut(
            start=_utc(part.start_ms), end=_utc(end) if end is not None else None,
            reason=part.reason, category=found.category if found else None,
            loss=str(found.loss) if found else None, by=part.by, comment=part.comment))
    return EventOut(
        id=event.id, line=event.line, machine=event.machine, state=str(event.state),
        plc_reason=event.plc_reason, start=_utc(event.start_ms),
        end=_utc(event.end_ms) if event.end_ms is not None else None,
        duration_s=event.duration_s(now_ms), classified=event.classified, parts=parts)


def tree_out(tree: ReasonTree) -> TreeOut:
    return TreeOut(line=tree.line, threshold_s=tree.threshold_s, categories=[
        CategoryOut(id=c.id, name=c.name or c.id, reasons=[
            ReasonOut(code=r.code, name=r.name or r.code, loss=str(r.loss))
            for r in c.reasons])
        for c in tree.categories])
