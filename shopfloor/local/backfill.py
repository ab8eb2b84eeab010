"""The demo's history for `shopfloor local up`: on a database without recent telemetry
of the site, the simulated plant's last hours (default 8 h, at least the current shift
so far) go through the real chain — the simulator's model (sim.history), the edge
agent's poll pipeline into its outbox (edge.history), MQTT, the collector, InfluxDB —
stamped in the past. The simulator is then started from the same origin, so live data
continue the history. A stocktake of every line at the origin anchors WIP.

Skipped when the database already holds telemetry of the site in that window (a second
`up` does not duplicate it), when the simulator or an edge agent is already running
(their state would not continue this history), or with `--history-hours 0`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from shopfloor.api.stocktake import Stocktake, to_lines
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.store import KpiStore
from shopfloor.shared import schema
from shopfloor.shared.plant import Plant
from shopfloor.shared.schema import quote_ident, quote_string

DEFAULT_HOURS = 8.0
MAX_HOURS = 7 * 24.0
"""Never more than a week: the outbox and the first start stay reasonable."""
POLL_FACTOR = 2.0
"""The history is polled POLL_FACTOR times less often than the live agent polls (every
2 s on a plant polled every second; live polls keep the plant's intervals): half the
messages for every part of the chain to carry, so the demo's history is in within the
first minutes. The KPI engine counts a gap of up to `KpiSettings.gap_factor` (3) poll
periods as covered, so the history's coverage stays full."""


@dataclass(frozen=True)
class Plan:
    origin_s: float
    """Epoch seconds the history starts at (whole seconds)."""
    reason: str = ""
    """Why there is no backfill (empty: there is one)."""

    @property
    def wanted(self) -> bool:
        return not self.reason


def origin_for(plant: Plant, now_s: float, hours: float) -> float:
    """now - hours, or the start of the shift running now if that is earlier; whole
    seconds; never older than the plant accepts a telemetry timestamp."""
    origin = now_s - min(hours, MAX_HOURS) * 3600
    running = ShiftCalendar.of(plant).at(int(now_s * 1000))
    if running is not None:
        origin = min(origin, running.start_ms / 1000)
    # the plant's admission bound (plant.admission.max_age_s), with a minute to spare:
    # a sample older than that would be refused by the collector
    origin = max(origin, now_s - plant.admission.max_age_s + 60)
    return float(int(origin))


def stored_samples(store: KpiStore, origin_s: float, now_s: float) -> int:
    """Telemetry samples of the site stored in [origin, now)."""
    q = (f"SELECT count({quote_ident(schema.SEQ_FIELD)}) FROM {quote_ident(schema.TELEMETRY)} "
         f"WHERE {quote_ident(schema.TAG_SITE)} = {quote_string(store.site)} "
         f"AND time >= {int(origin_s * 1000)}ms AND time < {int(now_s * 1000)}ms")
    series = store.query(q)
    return sum(int(row[1] or 0) for s in series for row in s.get("values", []))


def decide(plant: Plant, hours: float, started: Callable[[str], bool],
           now_s: float | None = None) -> Plan:
    """Whether to backfill, from when. `started(name)`: a process of the run is alive."""
    now_s = time.time() if now_s is None else now_s
    origin = origin_for(plant, now_s, hours)
    if hours <= 0:
        return Plan(origin, "--history-hours 0")
    if started("sim") or any(started(f"edge-{a.id}") for a in plant.agents):
        return Plan(origin, "the simulator or an edge agent is already running")
    store = KpiStore.open(plant)
    try:
        if stored_samples(store, origin, now_s) > 0:
            return Plan(origin, "the database already holds telemetry of these hours")
    finally:
        store.close()
    return Plan(origin)


def anchor_lines(plant: Plant, stock: dict[str, dict[str, int]], origin_s: float) -> int:
    """A stocktake of every line at the origin (the simulated buffers' contents then)."""
    at = dt.datetime.fromtimestamp(origin_s, dt.UTC)
    lines = [text for line, buffers in stock.items()
             for text in to_lines(plant.site.id,
                                  Stocktake(line, at, sum(buffers.values()), buffers))]
    store = KpiStore.open(plant)
    try:
        store.writer.prepare()
        store.write(lines)
    finally:
        store.close()
    return len(stock)


def run(plant: Plant, seed: int, origin_s: float, end_s: float,
        echo: Callable[[str], None]) -> int:
    """Anchor the lines at the origin, then bring [origin, end] into every agent's outbox,
    and on up to the moment it is done (the queueing takes a while: the live polls then
    continue the history without a gap). Returns the number of polls queued."""
    from shopfloor.edge.drivers import history_drivers
    from shopfloor.edge.history import fill
    from shopfloor.sim.history import History

    anchor_lines(plant, History(plant, seed, origin_s).stock(), origin_s)
    hours = (end_s - origin_s) / 3600
    total = 0
    for polling in plant.agents:
        history = History(plant, seed, origin_s)  # each agent walks the same past
        # machines the simulator does not model (serial RTU, another protocol) have no past
        simulated = [m for m in polling.machines if m in history.devices]
        if not simulated:
            continue
        agent = polling.model_copy(update={"machines": simulated})

        def progress(now_s: float, agent_id: str = agent.id) -> None:
            done = min(1.0, (now_s - origin_s) / max(1.0, end_s - origin_s))
            echo(f"\r  history {agent_id:<10} [{'#' * int(done * 30):<30}] "
                 f"{done * hours:4.1f} of {hours:.1f} h")

        drivers = history_drivers(history, plant, agent)
        total += asyncio.run(fill(plant, agent, history, drivers, origin_s, end_s, progress,
                                  step_factor=POLL_FACTOR, follow=time.time))
        echo("\n")
    return total
