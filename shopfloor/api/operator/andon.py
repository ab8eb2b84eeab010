"""The andon board of a line: one tile per machine (state, since when, product and order,
shift OEE so far, parts vs target) from the live view, which the retained MQTT topics
keep current (state from the edge, KPIs from the collector). `AndonHub` tells every open
stream which machines changed, so the page learns of a state change as soon as the API
receives it, without polling."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from shopfloor.api.live import LiveView
from shopfloor.shared.plant import Line, Plant


class TileOut(BaseModel):
    machine: str = Field(examples=["press1"])
    name: str
    state: str | None = Field(description="null before the edge said anything")
    reason: str | None
    since: dt.datetime | None = Field(description="when the state began (edge time)")
    product: str | None
    work_order: str | None
    online: bool | None = Field(description="the machine's edge agent; null: not heard yet")
    shift: str | None = Field(None, description="the running shift (collector's KPIs)")
    shift_start: dt.datetime | None = Field(None, description="when that shift began")
    oee: float | None = Field(None, description="shift OEE so far, 0..1")
    parts: int | None = Field(None, description="parts produced this shift (PQ)")
    target: int | None = Field(None, description="parts at the ideal cycle time over the "
                                                  "shift's planned busy time so far")


class AndonOut(BaseModel):
    line: str
    name: str
    tiles: list[TileOut]


def tile(plant: Plant, live: LiveView, machine: str) -> TileOut:
    spec = plant.machines[machine]
    snapshot = live.machine(machine)
    state = snapshot.state
    shift = (snapshot.kpi or {}).get("shift")
    kpis = _shift_kpis(shift) if isinstance(shift, dict) else {}
    return TileOut(
        machine=machine, name=spec.name or machine,
        state=str(state.state) if state else None, reason=state.reason if state else None,
        since=state.since if state else None, product=state.product if state else None,
        work_order=state.work_order if state else None, online=live.online(machine), **kpis)


def _shift_kpis(shift: dict[str, Any]) -> dict[str, Any]:
    """OEE, PQ and the target of the collector's shift KPIs. Target = PQ x PBT_obs / NRT:
    the parts the machine would have made at its ideal cycle times in the planned busy
    time observed so far (None before it made any)."""
    pq, nrt, pbt = (_number(shift.get(k)) for k in ("pq", "nrt_s", "pbt_obs_s"))
    target = pq * pbt / nrt if pq is not None and pbt is not None and nrt else None
    return {"shift": shift.get("shift"), "shift_start": shift.get("start"),
            "oee": _number(shift.get("oee")), "parts": round(pq) if pq is not None else None,
            "target": round(target) if target is not None else None}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def board(plant: Plant, live: LiveView, line: Line) -> AndonOut:
    return AndonOut(line=line.id, name=line.name or line.id,
                    tiles=[tile(plant, live, m) for m in _machines(plant, line)])


def _machines(plant: Plant, line: Line) -> list[str]:
    """The line's stations in flow order, then its other machines."""
    rest = [m for m, spec in plant.machines.items()
            if spec.line == line.id and m not in line.stations]
    return [*line.stations, *rest]


class Subscription:
    """One stream's pending changes: machine ids, coalesced (a burst is one update)."""

    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()

    def take(self) -> set[str]:
        out, self.dirty = self.dirty, set()
        self.wake.clear()
        return out


class AndonHub:
    """Fans the live view's changes (MQTT thread) out to the open streams (event loop)."""

    def __init__(self, live: LiveView, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._subscriptions: set[Subscription] = set()
        live.listen(self._on_change)

    def _on_change(self, machine: str) -> None:
        self._loop.call_soon_threadsafe(self._publish, machine)

    def _publish(self, machine: str) -> None:
        for sub in self._subscriptions:
            sub.dirty.add(machine)
            sub.wake.set()

    def subscribe(self) -> Subscription:
        sub = Subscription()
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    @property
    def streams(self) -> int:
        return len(self._subscriptions)
