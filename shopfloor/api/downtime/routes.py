"""Downtime events: list, look up, classify, split (docs/api.md, "Downtime events").
Operators classify on their lines; changing a reason a person gave needs `reclassify`
(supervisors); every change is audited with before and after."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from shopfloor.api.deps import (
    LineDep,
    PlantDep,
    ReaderDep,
    RuntimeDep,
    require,
    require_visible,
    visible_line,
    visible_machine,
)
from shopfloor.api.downtime import events as ev
from shopfloor.api.downtime.models import (
    ClassifyIn,
    EventOut,
    EventPage,
    SplitIn,
    TreeOut,
    event_out,
    tree_out,
)
from shopfloor.api.downtime.service import DowntimeService, unknown_event
from shopfloor.api.errors import Forbidden, Invalid
from shopfloor.api.models.common import (
    ERRORS,
    NOT_FOUND,
    UNAVAILABLE,
    UNPROCESSABLE,
    ApiTime,
    page_info,
)
from shopfloor.api.queries import Window
from shopfloor.api.routes import PREFIX
from shopfloor.api.security import Permission, Principal
from shopfloor.shared.contract import utc_now
from shopfloor.shared.plant import Plant
from shopfloor.shared.reasons import ReasonTree
from shopfloor.shared.schema import to_ms

router = APIRouter(prefix=PREFIX, tags=["downtime"],
                   responses={**ERRORS, **NOT_FOUND, **UNPROCESSABLE, **UNAVAILABLE})
IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_WINDOW = dt.timedelta(days=1)
ClassifierDep = Annotated[Principal, Depends(require(Permission.CLASSIFY))]
EventId = Annotated[str, Path(max_length=90, pattern=r"^[A-Za-z0-9_.-]+:[0-9]{1,16}$",
                              examples=["press1:1764720000000"])]


async def get_downtime(runtime: RuntimeDep) -> DowntimeService:
    service = runtime.downtime
    assert service is not None  # set in open_runtime
    return service


DowntimeDep = Annotated[DowntimeService, Depends(get_downtime)]


@router.get("/lines/{line}/reasons", response_model=TreeOut,
            summary="The reason tree of a line")
async def line_reasons(downtime: DowntimeDep, principal: ReaderDep, line: LineDep) -> TreeOut:
    """Plant-wide categories and the line's additions, with the event threshold."""
    return tree_out(downtime.tree(line.id))


@router.get("/downtime/events", response_model=EventPage, summary="Downtime events")
async def list_events(
    plant: PlantDep, downtime: DowntimeDep, principal: ReaderDep,
    line: Annotated[str | None, Query(pattern=IDENT)] = None,
    machine: Annotated[str | None, Query(pattern=IDENT)] = None,
    unclassified: Annotated[bool, Query(description="only events with an unclassified "
                                                    "part")] = False,
    start: Annotated[ApiTime | None, Query(description="events starting from "
                                                           "(default: end - 1 day)")] = None,
    end: Annotated[ApiTime | None, Query(description="default: now")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> EventPage:
    """Events starting in the window, newest first; the ongoing one of a machine
    appears once it has lasted the line's threshold (`end` null)."""
    _check_scope(plant, principal, line, machine)
    now = utc_now()
    window = Window.of(start, end, DEFAULT_WINDOW, now)
    found = await downtime.events(line, machine, to_ms(window.start), to_ms(window.end),
                                  to_ms(now))
    found = [e for e in found if principal.may_see_line(e.line)
             and (not unclassified or not e.classified)]
    chosen = found[offset:offset + limit]
    now_ms = to_ms(now)
    return EventPage(items=[event_out(e, downtime.tree(e.line), now_ms) for e in chosen],
                     page=page_info(limit, offset, len(chosen), offset + limit < len(found)))


@router.get("/downtime/events/{event_id}", response_model=EventOut,
            summary="One downtime event")
async def get_event(downtime: DowntimeDep, principal: ReaderDep,
                    event_id: EventId) -> EventOut:
    now_ms = to_ms(utc_now())
    event = await _visible(downtime, principal, event_id, now_ms)
    return event_out(event, downtime.tree(event.line), now_ms)


@router.post("/downtime/events/{event_id}/classify", response_model=EventOut,
             summary="Give a part of an event a reason")
async def classify(downtime: DowntimeDep, principal: ClassifierDep, event_id: EventId,
                   body: ClassifyIn) -> EventOut:
    """Part `part` gets `reason` (a code of the line's tree). Changing a reason a person
    gave (not the PLC's) needs the `reclassify` permission; audited as `classify` or
    `reclassify` with before and after."""
    now_ms = to_ms(utc_now())
    before = await _visible(downtime, principal, event_id, now_ms)
    reclassify = body.part < len(before.parts) and _by_person(before.parts[body.part])
    if reclassify and not principal.can(Permission.RECLASSIFY):
        raise Forbidden(f"role {principal.role} may not reclassify: part {body.part} was "
                        f"classified by {before.parts[body.part].by}")
    after = _apply(lambda: ev.classify(before, body.part, body.reason, principal.name,
                                       body.comment, downtime.tree(before.line)))
    await downtime.change(before, after, principal.name,
                          "reclassify" if reclassify else "classify", body.comment)
    return event_out(after, downtime.tree(after.line), now_ms)


@router.post("/downtime/events/{event_id}/split", response_model=EventOut,
             summary="Split an event into parts")
async def split(downtime: DowntimeDep, principal: ClassifierDep, event_id: EventId,
                body: SplitIn) -> EventOut:
    """Cut the event at instants inside it (a jam that turned into a repair); each part
    keeps its reason unless `reasons` gives one per resulting part. An event a person
    already classified needs `reclassify`."""
    now_ms = to_ms(utc_now())
    before = await _visible(downtime, principal, event_id, now_ms)
    if any(_by_person(p) for p in before.parts) and not principal.can(Permission.RECLASSIFY):
        raise Forbidden(f"role {principal.role} may not split an event a person classified")
    tree = downtime.tree(before.line)
    after = _apply(lambda: ev.split(before, [to_ms(t) for t in body.at], now_ms))
    if body.reasons is not None:
        if len(body.reasons) != len(after.parts):
            raise Invalid(f"reasons: {len(body.reasons)} given for {len(after.parts)} parts",
                          "bad_split")
        for i, reason in enumerate(body.reasons):
            if reason is not None:
                after = _classified(after, i, reason, principal.name, body.comment, tree)
    await downtime.change(before, after, principal.name, "split", body.comment)
    return event_out(after, tree, now_ms)


def _classified(event: ev.Event, index: int, reason: str, by: str, comment: str,
                tree: ReasonTree) -> ev.Event:
    return _apply(lambda: ev.classify(event, index, reason, by, comment, tree))


def _by_person(part: ev.Part) -> bool:
    return part.reason is not None and part.by != ev.PLC_BY


def _apply(change: Callable[[], ev.Event]) -> ev.Event:
    try:
        return change()
    except ev.EventError as exc:
        raise Invalid(str(exc), "bad_classification") from exc


async def _visible(downtime: DowntimeService, principal: Principal, event_id: str,
                   now_ms: int) -> ev.Event:
    event = await downtime.event(event_id, now_ms)
    require_visible(principal, event.line, unknown_event(event_id))
    return event


def _check_scope(plant: Plant, principal: Principal, line: str | None,
                 machine: str | None) -> None:
    if line is not None:
        visible_line(plant, principal, line)
    if machine is not None:
        visible_machine(plant, principal, machine)
