"""History from InfluxDB: a machine's points over a window (raw or aggregated), its state
changes and its downtime episodes with reasons."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from shopfloor.api import queries
from shopfloor.api.deps import InfluxDep, MachineDep, PlantDep, ReaderDep, RuntimeDep
from shopfloor.api.episodes import Change, downtime
from shopfloor.api.errors import Invalid
from shopfloor.api.models.common import (
    ERRORS,
    NOT_FOUND,
    UNAVAILABLE,
    UNPROCESSABLE,
    ApiTime,
    page_info,
)
from shopfloor.api.models.history import (
    DowntimeOut,
    EpisodeOut,
    HistoryOut,
    HistoryRow,
    StateChangeOut,
    StateChangesOut,
)
from shopfloor.api.queries import Aggregation, Window
from shopfloor.api.routes import PREFIX
from shopfloor.shared.contract import utc_now
from shopfloor.shared.enums import DataType

router = APIRouter(
    prefix=PREFIX, tags=["history"],
    responses={**ERRORS, **NOT_FOUND, **UNPROCESSABLE, **UNAVAILABLE})
DEFAULT_WINDOW = dt.timedelta(hours=1)
MAX_STATE_CHANGES = 10_000

Start = Annotated[ApiTime | None, Query(description="window start, ISO 8601 with offset "
                                            "(default: end - 1 h)",
                                            examples=["2026-11-25T19:00:00Z"])]
End = Annotated[ApiTime | None, Query(description="window end, exclusive (default: now)",
                                          examples=["2026-11-25T20:00:00Z"])]
Limit = Annotated[int, Query(ge=1, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


@router.get("/machines/{machine}/history", response_model=HistoryOut,
            summary="A machine's points over a window")
async def history(
    runtime: RuntimeDep, plant: PlantDep, influx: InfluxDep, principal: ReaderDep,
    machine: MachineDep,
    start: Start = None, end: End = None,
    point: Annotated[list[str] | None, Query(description="points (repeat); default: all "
                                             "numeric points", max_length=100)] = None,
    interval_s: Annotated[int | None, Query(ge=1, le=31_536_000,
                                            description="bucket width; omit for raw samples")
                          ] = None,
    aggregation: Aggregation = Aggregation.MEAN,
    limit: Limit = 1000, offset: Offset = 0,
) -> HistoryOut:
    """Raw samples, or one row per `interval_s` bucket aggregated with `aggregation`."""
    window = Window.of(start, end, DEFAULT_WINDOW, utc_now())
    if interval_s is None:
        window = window.raw(runtime.settings.max_raw_window_s)
    names = _points(machine.spec, point, aggregation if interval_s else None)
    q = queries.history(plant.site.id, machine.id, names, window, interval_s, aggregation,
                        limit + 1, offset)
    rows = [r for r in await influx.rows(q) if any(r.get(n) is not None for n in names)]
    more = len(rows) > limit
    rows = rows[:limit]
    return HistoryOut(
        machine=machine.id, start=window.start, end=window.end, interval_s=interval_s,
        aggregation=aggregation.value if interval_s else None, points=names,
        # built without per-row validation: the values come typed from our own database
        rows=[HistoryRow.model_construct(time=_utc(r["time"]),
                                         values={n: r.get(n) for n in names}) for r in rows],
        page=page_info(limit, offset, len(rows), more),
    )


def _points(spec: Any, wanted: list[str] | None, aggregation: Aggregation | None) -> list[str]:
    numeric = [p.name for p in spec.points if not p.type.is_text and p.type is not DataType.BOOL]
    if not wanted:
        return numeric
    names = list(dict.fromkeys(wanted))
    for name in names:
        found = spec.point(name)
        if found is None:
            raise Invalid(f"machine has no point {name!r}", "unknown_point")
        if aggregation is not None and aggregation.numeric_only and name not in numeric:
            raise Invalid(f"{aggregation.value} needs a numeric point; {name} is {found.type}",
                          "bad_aggregation")
    return names


async def _changes(influx: Any, site: str, machine: str, window: Window) -> list[dict[str, Any]]:
    return await influx.rows(queries.state_changes(site, machine, window, MAX_STATE_CHANGES))


@router.get("/machines/{machine}/states", response_model=StateChangesOut,
            summary="A machine's state changes")
async def state_changes(plant: PlantDep, influx: InfluxDep, principal: ReaderDep,
                        machine: MachineDep, start: Start = None, end: End = None,
                        limit: Limit = 1000, offset: Offset = 0) -> StateChangesOut:
    """State changes (state, reason, code, product, work order) in the window, oldest first."""
    window = Window.of(start, end, DEFAULT_WINDOW, utc_now())
    rows = await _changes(influx, plant.site.id, machine.id, window)
    chosen = rows[offset:offset + limit]
    return StateChangesOut(
        machine=machine.id, start=window.start, end=window.end,
        items=[StateChangeOut(time=_utc(r["time"]), state=str(r.get("state")),
                              reason=r.get("reason"), code=r.get("code"),
                              product=r.get("product"), work_order=r.get("work_order"))
               for r in chosen],
        page=page_info(limit, offset, len(chosen), offset + limit < len(rows)),
    )


@router.get("/machines/{machine}/downtime", response_model=DowntimeOut,
            summary="A machine's downtime episodes with reasons")
async def downtime_episodes(plant: PlantDep, influx: InfluxDep, principal: ReaderDep,
                            machine: MachineDep, start: Start = None, end: End = None,
                            limit: Limit = 1000, offset: Offset = 0) -> DowntimeOut:
    """Every maximal run of one non-running (state, reason) in the window, cut to it."""
    window = Window.of(start, end, DEFAULT_WINDOW, utc_now())
    rows = await _changes(influx, plant.site.id, machine.id, window)
    prior = await influx.rows(queries.state_before(plant.site.id, machine.id, window.start))
    episodes = downtime(_change(prior[0]) if prior else None, [_change(r) for r in rows],
                        window.start, min(window.end, utc_now()))
    chosen = episodes[offset:offset + limit]
    return DowntimeOut(
        machine=machine.id, start=window.start, end=window.end,
        total_s=sum(e.duration_s for e in episodes),
        items=[EpisodeOut(start=e.start, end=e.end, duration_s=e.duration_s, state=e.state,
                          reason=e.reason, ongoing=e.ongoing) for e in chosen],
        page=page_info(limit, offset, len(chosen), offset + limit < len(episodes)),
    )


def _change(row: dict[str, Any]) -> Change:
    return Change(_utc(row["time"]), str(row.get("state")), row.get("reason"))
