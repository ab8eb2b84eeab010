"""Past polls into the outbox: the agent's own poll pipeline (read plan, decode, deadband,
sequence numbers, state) run over drivers that read a plant's past (for the simulator:
`edge.drivers.modbus.history`), each poll stamped with its instant. The agent then
publishes them like any backlog, in order, before its live polls. `shopfloor local up`
uses it to give the demo plant its last hours (the past: sim.history.History).

Run it only while the agent is stopped: the outbox has one owner.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from shopfloor.edge.agent import outbox_path_of, restore_tracker
from shopfloor.edge.drivers.base import Driver
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.poller import MachinePoller
from shopfloor.edge.store import Store
from shopfloor.edge.stream import MachineStream
from shopfloor.shared.plant import Agent, Plant

COMMIT_EVERY_S = 600.0
"""Commit (and report progress) every this many seconds of history."""


class Clock(Protocol):
    """What the drivers read from, moved to each instant in increasing time."""

    def advance(self, now_s: float) -> None: ...


async def fill(plant: Plant, agent: Agent, clock: Clock, drivers: Sequence[Driver],
               start_s: float, end_s: float,
               progress: Callable[[float], None] | None = None,
               step_factor: float = 1.0, follow: Callable[[], float] | None = None) -> int:
    """Poll `drivers` from start_s to end_s (epoch s) on each point group's own interval,
    advancing `clock` to each instant first, and queue the telemetry and state messages
    in the agent's outbox. Returns the number of polls queued. `step_factor` >= 1
    stretches the intervals: the polls are `step_factor` x the shortest interval apart,
    each group due every round(interval / step) polls (at least every poll). `follow`
    (e.g. the wall clock): once end_s is passed, polling goes on up to follow(), asked
    again each time it is passed, so that the history ends less than a step before the
    moment fill returns, however long it took."""
    if step_factor < 1:
        raise ValueError(f"step_factor must be at least 1, not {step_factor}")
    store = Store(outbox_path_of(agent), agent.queue.max_samples, agent.queue.when_full)
    metrics = EdgeMetrics()
    outbox = Outbox(store, metrics)
    saved = store.states()
    serving = {mid: d for d in drivers for mid in d.machines}
    pollers = [
        MachinePoller(serving[mid], MachineStream(
            plant.site.id, mid, plant.machines[mid], agent, outbox, metrics,
            restore_tracker(saved.get(mid))), metrics)
        for mid in agent.machines
    ]
    step = step_factor * min((iv for p in pollers for iv in p.plans), default=1.0)
    polls, commit_every = 0, max(1, round(COMMIT_EVERY_S / step))
    try:
        for k, now_s in _instants(start_s, step, end_s, follow):
            clock.advance(now_s)
            ts = dt.datetime.fromtimestamp(now_s, dt.UTC)
            for poller in pollers:
                plans = _due(poller, k, step)
                if plans:
                    await poller.poll_once(plans, ts)
                    polls += 1
            if k % commit_every == commit_every - 1:
                await outbox.commit()
                if progress is not None:
                    progress(now_s)
    finally:
        await outbox.close()
    if progress is not None:
        progress(end_s)
    return polls


def _instants(start_s: float, step: float, end_s: float,
              follow: Callable[[], float] | None) -> Iterator[tuple[int, float]]:
    """(k, start_s + k * step) up to end_s, then on up to follow() while it moves on."""
    k = 0
    while True:
        now_s = start_s + k * step
        if now_s > end_s and follow is not None:
            end_s = max(end_s, follow())
        if now_s > end_s:
            return
        yield k, now_s
        k += 1


def _due(poller: MachinePoller, k: int, step: float) -> list[Any]:
    """The plans of every point group due at step k (group interval: a multiple of step)."""
    return [plan for interval, plan in poller.plans.items()
            if k % max(1, round(interval / step)) == 0]
