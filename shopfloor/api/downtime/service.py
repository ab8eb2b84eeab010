"""Downtime events for the API: read (finished states from `state_duration`, the open
one from the live view, classifications from `downtime`), changed (classify, split,
reclassify: written to `downtime`, audited with before/after), and kept in the store
(`sync`: every finished event gets its points, open classified ones their durations once
they end). One lock serialises every write, so a sync never overwrites a classification
made while it ran."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from shopfloor.api.audit import AuditEntry, AuditLog
from shopfloor.api.downtime import events as ev
from shopfloor.api.downtime import queries
from shopfloor.api.downtime import rows as store_rows
from shopfloor.api.downtime.events import Event
from shopfloor.api.errors import ApiError, NotFound
from shopfloor.api.influx import InfluxClient
from shopfloor.api.live import LiveView
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.shared.enums import MachineState
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Plant
from shopfloor.shared.reasons import ReasonTree, tree_of
from shopfloor.shared.schema import REASON_NONE, to_ms

log = logging.getLogger(__name__)

SYNC_PERIOD_S = 5.0
SYNC_RECENT_MS = 3_600_000  # each sync: events starting in the last hour, and open ones
SYNC_LOOKBACK_MS = 2 * 86_400_000  # every SYNC_FULL_EVERY syncs (and the first): 2 days
SYNC_FULL_EVERY = 120
DONE = "done"  # audit outcome of a classification


def unknown_event(event_id: str) -> NotFound:
    """The 404 for an event id that does not exist (or that the key may not see)."""
    return NotFound(f"no downtime event {event_id!r}", "unknown_event")


class DowntimeService:
    def __init__(self, plant: Plant, influx: InfluxClient, live: LiveView,
                 audit: AuditLog) -> None:
        self._plant = plant
        self._influx = influx
        self._live = live
        self._audit = audit
        self._trees = {line.id: tree_of(plant.downtime, line.id, plant.collector.minor_stop_s)
                       for line in plant.lines}
        self._lock = asyncio.Lock()
        self._shift_of = ShiftCalendar.of(plant).shift_name
        self._task: asyncio.Task[None] | None = None
        self._failures = FailureLog(log, "downtime sync")
        self._open: dict[str, int] = {}  # id -> start of events seen open, until finished
        self._syncs = 0

    def tree(self, line: str) -> ReasonTree:
        return self._trees[line]

    async def events(self, line: str | None, machine: str | None, lo_ms: int, hi_ms: int,
                     now_ms: int) -> list[Event]:
        """Events starting in [lo, hi) of a line or machine (None: all), newest first."""
        site = self._plant.site.id
        finished = await self._finished(line, machine, lo_ms, hi_ms)
        current = [e for e in self.open_events(now_ms) if lo_ms <= e.start_ms < hi_ms
                   and line in (None, e.line) and machine in (None, e.machine)]
        merged = ev.merge_open(finished, current)
        if not merged:
            return []
        last = max(e.end_ms if e.end_ms is not None else now_ms for e in merged)
        stored = await self._stored(queries.stored(site, line, machine, lo_ms, last + 1))
        parts = store_rows.parts_by_event(stored)
        return [ev.with_parts(e, parts.get(e.id, ())) for e in merged]

    async def event(self, event_id: str, now_ms: int) -> Event:
        """One event by id (404 when there is no such event)."""
        parsed = ev.parse_id(event_id)
        if parsed is None or parsed[0] not in self._plant.machines:
            raise unknown_event(event_id)
        machine, start = parsed
        found = [e for e in await self.events(None, machine, start, start + 1, now_ms)
                 if e.id == event_id]
        if not found:
            raise unknown_event(event_id)
        return found[0]

    def open_events(self, now_ms: int) -> list[Event]:
        """The ongoing downtime of every machine, once it has lasted the threshold."""
        out = []
        for mid, machine in self._plant.machines.items():
            state = self._live.machine(mid).state
            if state is None:
                continue
            start = to_ms(state.since)
            tree = self._trees[machine.line]
            if ev.qualifies(state.state, (now_ms - start) / 1000, tree):
                out.append(ev.new_event(machine.line, mid, start, None, state.state,
                                        state.reason, tree))
        return out

    async def _finished(self, line: str | None, machine: str | None, lo_ms: int,
                        hi_ms: int) -> list[Event]:
        rows = await self._influx.rows(queries.finished(self._plant.site.id, line, machine,
                                                        lo_ms, hi_ms))
        out = []
        for row in rows:
            spec = self._plant.machines.get(row.get("machine") or "")
            if spec is None or row.get("duration_s") is None:
                continue
            tree = self._trees[spec.line]
            state = MachineState(row["state"])
            duration_s = float(row["duration_s"])
            if not ev.qualifies(state, duration_s, tree):
                continue
            start = int(row["time"])
            reason = row.get("reason")
            out.append(ev.new_event(spec.line, row["machine"], start,
                                    start + round(duration_s * 1000), state,
                                    None if reason == REASON_NONE else reason, tree))
        return out

    async def _stored(self, query: str) -> list[store_rows.Stored]:
        return [s for s in map(store_rows.from_row, await self._influx.rows(query))
                if s is not None]

    async def change(self, before: Event, after: Event, by: str, action: str,
                     comment: str = "") -> None:
        """Store `after` (the event as changed by `by`) and audit the change."""
        site = self._plant.site.id
        async with self._lock:
            stored = await self._stored(queries.stored(
                site, None, before.machine, before.start_ms,
                (before.end_ms or before.start_ms) + 86_400_000 * 400, before.id))
            changed = store_rows.changes(after, self.tree(after.line), stored, self._shift_of)
            await self._influx.write([store_rows.to_line(site, s) for s in changed])
        self._audit.add(AuditEntry(
            site=site, line=after.line, machine=after.machine, action=action, outcome=DONE,
            requested_by=by, command_id=after.id, detail=json.dumps(
                {"before": _parts(before), "after": _parts(after), "comment": comment})))

    async def sync(self, now_ms: int) -> int:
        """Write what the store lacks for finished events: those starting in the last
        hour, those seen open before (however long ago they started) and, on the first
        and every SYNC_FULL_EVERY-th call, the last two days. Returns points written."""
        self._open.update((e.id, e.start_ms) for e in self.open_events(now_ms))
        full = self._syncs % SYNC_FULL_EVERY == 0
        self._syncs += 1
        lo = min([now_ms - (SYNC_LOOKBACK_MS if full else SYNC_RECENT_MS),
                  *self._open.values()])
        site = self._plant.site.id
        async with self._lock:
            found = await self._finished(None, None, lo, now_ms + 1)
            stored = await self._stored(queries.stored(site, None, None, lo, now_ms + 1))
            parts = store_rows.parts_by_event(stored)
            lines = []
            for event in found:
                current = ev.with_parts(event, parts.get(event.id, ()))
                for s in store_rows.changes(current, self.tree(event.line), stored,
                                            self._shift_of):
                    lines.append(store_rows.to_line(site, s))
            await self._influx.write(lines)
        for event in found:
            self._open.pop(event.id, None)
        return len(lines)

    def start(self, clock: Any) -> None:
        self._task = asyncio.create_task(self._run(clock), name="downtime-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, clock: Any) -> None:
        while True:
            try:
                written = await self.sync(clock())
                if written:
                    log.debug("downtime sync: %d points written", written)
                self._failures.success()
            except ApiError as exc:  # database down, busy or slow: again next period
                self._failures.failure("%s", exc)
            except Exception:  # a bug must not end the sync for the process's lifetime
                log.exception("downtime sync failed; trying again in %.0f s", SYNC_PERIOD_S)
            await asyncio.sleep(SYNC_PERIOD_S)


def _parts(event: Event) -> list[dict[str, Any]]:
    return [{"start_ms": p.start_ms, "reason": p.reason, "by": p.by} for p in event.parts]
