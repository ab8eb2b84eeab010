"""Per work order: produced, good, scrap, remaining, started/finished, and progress along
the line's stations in flow order (docs/oee.md "Work orders").

A part counts for the work order set on its machine (`control.work_order`) when the
counter pair that counted it ended. Counts come from bucket aggregates (`Agg.orders`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shopfloor.kpi.aggregate import Bucket
from shopfloor.kpi.buckets import parts
from shopfloor.shared.plant import Line


@dataclass(frozen=True, slots=True)
class StationProgress:
    station: str
    parts: int  # parts of the order the station completed (rejects included)
    scrap: int
    good: int  # parts of the order past this station


@dataclass(frozen=True, slots=True)
class OrderProgress:
    """`produced`/`good`: out of the last station; `scrap`: over all stations;
    `remaining` = target - good (None without a target); `phase`: the furthest station
    that has handled parts of the order, or "done" once good >= target."""

    id: str
    target: int | None
    produced: int
    good: int
    scrap: int
    remaining: int | None
    started_ms: int | None
    finished_ms: int | None
    phase: str | None
    stations: tuple[StationProgress, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _station(buckets: Sequence[Bucket], order: str) -> tuple[float, float, int | None, int | None]:
    parts = scrap = 0.0
    first = last = None
    for b in buckets:
        counts = b.agg.orders.get(order)
        if counts is None or not (counts[0] or counts[1]):
            continue
        parts += counts[0]
        scrap += counts[1]
        first = b.start_ms if first is None else first
        last = b.end_ms
    return parts, scrap, first, last


def progress(
    line: Line,
    buckets: Mapping[str, Sequence[Bucket]],
    targets: Mapping[str, int] | None = None,
) -> list[OrderProgress]:
    """Every order seen in the buckets of the line's stations (or with a target)."""
    targets = targets or {}
    orders = set(targets)
    for station in line.stations:
        for b in buckets.get(station, ()):
            orders.update(b.agg.orders)
    return [_order(line, buckets, order, targets.get(order)) for order in sorted(orders)]


def _order(
    line: Line, buckets: Mapping[str, Sequence[Bucket]], order: str, target: int | None
) -> OrderProgress:
    stations = []
    starts, phase = [], None
    last_end = None
    for station in line.stations:
        made, scrapped, first, last = _station(buckets.get(station, ()), order)
        whole, lost = parts(made), parts(scrapped)  # counts reported in whole parts
        stations.append(StationProgress(station, whole, lost, whole - lost))
        if first is not None:
            starts.append(first)
            phase = station
        if station == line.stations[-1]:
            last_end = last
    out = stations[-1]
    remaining = max(0, target - out.good) if target is not None else None
    done = target is not None and out.good >= target
    return OrderProgress(
        id=order, target=target, produced=out.parts, good=out.good,
        scrap=sum(s.scrap for s in stations), remaining=remaining,
        started_ms=min(starts) if starts else None,
        finished_ms=last_end if done else None,
        phase="done" if done else phase, stations=tuple(stations),
    )
