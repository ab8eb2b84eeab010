"""The KPI engine's on-demand functions (`shopfloor.kpi.ondemand`) for the API: OEE of a
machine over a window, a shift instance or a rolling period, and WIP of a line. The
engine reads InfluxDB synchronously, so calls run in a worker thread of the API's
`WorkLimiter` (api/guard.py: a bounded number at once, each under a time limit); its
store is opened on first use (the API starts without a database) and closed with the
app."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from shopfloor.api.errors import Invalid, NotFound, Unavailable
from shopfloor.api.guard import WorkLimiter
from shopfloor.kpi.calendar import ShiftCalendar, ShiftInstance
from shopfloor.kpi.errors import KpiError, KpiStoreError, KpiWorkError
from shopfloor.kpi.ondemand import Engine, OeeReport, WipReport
from shopfloor.kpi.store import KpiStore
from shopfloor.shared.plant import Plant

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Period:
    """A resolved KPI window: [start, end) and the shift instance it is, if one."""

    start: dt.datetime
    end: dt.datetime
    shift: ShiftInstance | None = None


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


class KpiService:
    def __init__(self, plant: Plant, reads: WorkLimiter | None = None) -> None:
        self._plant = plant
        self._reads = reads or WorkLimiter(4, 30.0)
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._calendar = ShiftCalendar.of(plant)

    def _get_engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = Engine(self._plant, KpiStore.open(self._plant))
            return self._engine

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.store.close()
                self._engine = None

    def shift(self, name: str | None, date: dt.date | None, now: dt.datetime) -> Period:
        """A named shift on a production date, or (no name) the shift running now."""
        calendar = self._calendar
        if name is None:
            found = calendar.at(int(now.timestamp() * 1000))
            if found is None:
                raise NotFound("no shift is running now", "no_shift")
        else:
            found = calendar.find(name, date or now.astimezone(calendar.zone).date())
            if found is None:
                raise NotFound(f"no shift {name!r} on that date", "no_shift")
        return Period(_utc(found.start_ms), _utc(found.end_ms), found)

    async def oee(self, machine: str, period: Period) -> OeeReport:
        def run() -> OeeReport:
            return self._get_engine().oee(machine, period.start, period.end, period.shift)

        return await self._call(run)

    async def wip(self, line: str, period: Period) -> WipReport:
        return await self._call(lambda: self._get_engine().wip(line, period.start, period.end))

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await self._reads.thread(fn, "KPI computation")
        except KpiStoreError as exc:
            raise Unavailable(f"KPI engine: {exc}", "database_error") from exc
        except KpiWorkError as exc:
            raise Invalid(exc.reason, "too_much_work") from exc
        except KpiError as exc:
            raise Invalid(str(exc), "kpi_refused") from exc
