"""Small plants and sample builders for the KPI tests (pure data, no services)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shopfloor.kpi.model import Sample
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.plants import REPLAY_MAX_AGE_S

CODES = {
    0: {"state": "stopped", "reason": "operator_stop"},
    1: {"state": "running"},
    2: {"state": "idle", "reason": "starved"},
    10: {"state": "stopped", "reason": "jam"},
    30: {"state": "setup", "reason": "changeover"},
    40: {"state": "planned_stop", "reason": "maintenance"},
}
RUN, STOP, IDLE, JAM, SETUP, PLANNED = 1, 0, 2, 10, 30, 40


def machine(port: int, line: str = "l1", counter: str = "uint32", poll_s: float = 1.0,
            products: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "line": line,
        "connection": {"host": "127.0.0.1", "port": port},
        "poll_interval_s": poll_s,
        "points": [
            {"name": "state", "address": 0},
            {"name": "total", "address": 1, "type": counter},
            {"name": "reject", "address": 3, "type": counter},
            {"name": "product", "address": 5, "writable": True},
            {"name": "wo", "address": 6, "type": "string", "length": 8, "writable": True},
        ],
        "state": {"point": "state", "codes": CODES},
        "counters": {"total": "total", "reject": "reject"},
        "products": products if products is not None else [
            {"id": "A", "code": 1, "ideal_cycle_time_s": 1.0},
            {"id": "B", "code": 2, "ideal_cycle_time_s": 2.0},
        ],
        "control": {"product": "product", "work_order": "wo"},
    }


def plant_data(shifts: list[dict[str, Any]] | None = None, timezone: str = "UTC",
               stations: int = 1, site: str = "s1", database: dict[str, Any] | None = None,
               collector: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    names = [f"m{i + 1}" for i in range(stations)]
    return {
        "site": {"id": site, "timezone": timezone},
        "database": database or {},
        "collector": collector or {},
        "admission": {"max_age_s": REPLAY_MAX_AGE_S},  # fixed dates, replayed
        "calendar": {"shifts": shifts or []},
        "lines": [{"id": "l1", "stations": names, "buffer_capacity": {}}],
        "machines": {n: machine(5020 + i, **kwargs) for i, n in enumerate(names)},
    }


def plant(*args: Any, **kwargs: Any) -> Plant:
    return parse_plant(plant_data(*args, **kwargs))


def ms(*args: int) -> int:
    """UTC epoch ms of a datetime."""
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


class Tape:
    """Builds 1-sample-per-step telemetry: state, counters, product, work order."""

    def __init__(self, t0_ms: int, step_ms: int = 1000, product: int = 1) -> None:
        self.t = t0_ms
        self.step = step_ms
        self.total = 0
        self.reject = 0
        self.product = product
        self.wo: str | None = None
        self.samples: list[Sample] = []

    def emit(self, state: int) -> None:
        values: dict[str, Any] = {"state": state, "total": self.total, "reject": self.reject,
                                  "product": self.product}
        if self.wo:
            values["wo"] = self.wo
        self.samples.append(Sample(self.t, values, seq=len(self.samples)))

    def run(self, state: int, steps: int, parts_per_step: int = 0, scrap_every: int = 0,
            width: int = 2**32) -> None:
        """`steps` samples in `state`; counters advance between samples."""
        for i in range(steps):
            self.emit(state)
            self.t += self.step
            self.total = (self.total + parts_per_step) % width
            if scrap_every and (i + 1) % scrap_every == 0:
                self.reject = (self.reject + 1) % width

    def gap(self, steps: int) -> None:
        self.t += steps * self.step
