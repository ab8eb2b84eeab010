"""The edge agent: wires the parts together and runs them as supervised, named tasks
in one TaskGroup — the outbox's group commit, the publisher,
the MQTT link, the command dispatcher. `run(stop)` returns after a graceful shutdown:
polling stops, pending samples are committed, in-flight messages get a moment for
their PUBACK (the rest stays in SQLite), and the agent says offline (retained).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from shopfloor import __version__
from shopfloor.edge.dispatch import CommandDispatcher
from shopfloor.edge.drivers import Reading, build_drivers
from shopfloor.edge.errors import EdgeError
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.mqtt import SESSION_EXPIRY_S, EdgeMqttLink
from shopfloor.edge.outbox import PENDING_POLLS, Outbox
from shopfloor.edge.overload import Governor
from shopfloor.edge.poller import MachinePoller
from shopfloor.edge.publisher import Publisher
from shopfloor.edge.schedule import Ticker, slot_for
from shopfloor.edge.state import StateTracker, StateView
from shopfloor.edge.store import Store
from shopfloor.edge.stream import MachineStream
from shopfloor.edge.supervise import TaskHealth, supervise
from shopfloor.shared import topics
from shopfloor.shared.access import client_id_of
from shopfloor.shared.contract import (
    MAX_PROBLEM_CHARS,
    MAX_PROBLEMS,
    AgentStatus,
    StatePayload,
    parse,
    utc_now,
)
from shopfloor.shared.errors import ContractError
from shopfloor.shared.mqtt import Session, Will
from shopfloor.shared.plant import Agent, Machine, Plant
from shopfloor.shared.status_server import StatusServer

log = logging.getLogger(__name__)

DRAIN_S = 2.0
"""On shutdown, how long to wait for in-flight PUBACKs (the rest stays queued)."""
INFLIGHT_RANGE = (20, 100)
STATUS_CHECK_S = 1.0
"""How often the status loop looks for a change of the agent's problems."""
BACKLOG_S = 2.0
BACKLOG_MIN = 500
"""While connected, an outbox past max(BACKLOG_MIN, BACKLOG_S of polling) that keeps
growing means the publisher is not keeping up: overload (overload.py)."""
COMMAND_IDS_KEPT_S = 30 * 24 * 3600.0
"""Executed command ids are remembered this long (commands expire long before)."""


def state_dir_of(agent: Agent) -> Path:
    return Path(agent.state_dir or f"shopfloor-state/{agent.id}")


def outbox_path_of(agent: Agent) -> Path:
    return Path(agent.queue.path) if agent.queue.path else state_dir_of(agent) / "outbox.sqlite3"


class EdgeAgent:
    def __init__(self, plant: Plant, agent_id: str) -> None:
        agent = plant.agent(agent_id)
        if agent is None:
            known = ", ".join(a.id for a in plant.agents) or "none"
            raise EdgeError(f"no agent {agent_id!r} in the plant file (agents: {known})")
        self.plant = plant
        self.agent = agent
        self.site = plant.site.id
        self.metrics = EdgeMetrics()
        self.status_topic = topics.status_topic(self.site, agent.id)
        self.status_port: int | None = None
        self.governor: Governor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.task_health = TaskHealth(self.metrics)
        self._outbox: Outbox | None = None

    def problems(self) -> list[str]:
        """Why the agent is unhealthy, apart from the broker: an outbox that cannot be
        written, tasks that crashed recently. Empty when all is well."""
        problems = self.task_health.problems()
        if self._outbox is not None and self._outbox.problem is not None:
            problems.insert(0, f"outbox: {self._outbox.problem}")
        return problems

    def _status(self, online: bool, queue_depth: int | None = None) -> bytes:
        governor = self.governor if online else None
        return AgentStatus(
            online=online,
            agent=self.agent.id,
            ts=utc_now(),
            machines=list(self.agent.machines),
            version=__version__,
            queue_depth=queue_depth,
            overloaded=governor.overloaded if governor else None,
            polls_skipped=governor.skipped if governor else None,
            problems=_status_problems(self.problems()) if online else None,
        ).to_json()

    def _make_governor(self, link: EdgeMqttLink, store: Store) -> Governor:
        """Overload control (overload.py); the status goes out at once when the agent
        starts or stops shedding polls."""
        nominal = sum(1 / self.plant.machines[m].poll_interval_s for m in self.agent.machines)

        def changed(overloaded: bool) -> None:
            if link.connected.is_set():
                link.publish(self.status_topic, self._status(True, store.samples), retain=True)

        governor = Governor(
            lambda: store.samples,
            link.connected.is_set,
            backlog_limit=max(BACKLOG_MIN, round(nominal * BACKLOG_S)),
            on_change=changed,
        )
        self.metrics.overloaded.set_function(lambda: float(governor.overloaded))
        self.metrics.poll_admission.set_function(lambda: governor.ratio)
        return governor

    async def _repeat_status(self, link: EdgeMqttLink, store: Store) -> None:
        """Re-publish the (retained) online status every status period while connected,
        with the outbox depth, so that dashboards see a backlog drain; at once (within
        a second) when the agent's problems change."""
        period = self.agent.status_period_s
        loop = asyncio.get_running_loop()
        due, reported = loop.time() + period, self.problems()
        while True:
            await asyncio.sleep(min(period, STATUS_CHECK_S))
            problems = self.problems()
            if loop.time() < due and problems == reported:
                continue
            if link.connected.is_set():
                link.publish(self.status_topic, self._status(True, store.samples), retain=True)
                due, reported = loop.time() + period, problems

    async def run(self, stop: asyncio.Event) -> None:
        queue = self.agent.queue
        store = Store(
            outbox_path_of(self.agent), queue.max_samples, queue.when_full, queue.max_bytes
        )
        store.forget_commands(time.time() - COMMAND_IDS_KEPT_S)
        outbox = self._outbox = Outbox(
            store, self.metrics, pending_max=PENDING_POLLS * len(self.agent.machines)
        )
        inflight = min(max(self.agent.publish_inflight, INFLIGHT_RANGE[0]), INFLIGHT_RANGE[1])
        client_id = client_id_of(self.plant.broker, f"shopfloor-edge-{self.site}-{self.agent.id}")
        will = Will(self.status_topic, self._status(False))
        session = Session(client_id, expiry_s=SESSION_EXPIRY_S, inflight=inflight, will=will)
        link = EdgeMqttLink(self.plant.broker, session, backoff_max_s=self.agent.backoff_max_s)
        publisher = Publisher(outbox, link, inflight, self.metrics)
        self.governor = self._make_governor(link, store)
        drivers = build_drivers(
            {mid: self.plant.machines[mid] for mid in self.agent.machines}, self.agent
        )
        serving = {mid: driver for driver in drivers for mid in driver.machines}
        streams = self._streams(store, outbox)
        polled = [s for s in streams if not serving[s.machine_id].pushes]
        ticker = Ticker(slot_for(sum(1 / _shortest_interval(s.machine) for s in polled)))
        pollers = [  # one timer per time slot for all of them
            MachinePoller(serving[s.machine_id], s, self.metrics, self.governor, ticker,
                          self.task_health)
            for s in polled
        ]
        dispatcher = CommandDispatcher(
            self.site,
            {s.machine_id: (s.machine, serving[s.machine_id]) for s in streams},
            outbox,
            self.metrics,
        )
        link.on_message = dispatcher.on_message
        link.on_connected = lambda: self._on_connected(link, dispatcher, store)
        self.metrics.broker_connected.set_function(lambda: float(link.connected.is_set()))
        self.metrics.queue_depth.set_function(lambda: float(store.samples))
        self.metrics.outbox_writable.set_function(lambda: float(outbox.problem is None))
        server = self._start_status_server(link, outbox, streams)
        # The plant model, clients and tasks live as long as the agent: keep them out of
        # the cyclic GC's full collections, which otherwise stall every poller for tens of
        # milliseconds with 1,000 machines.
        gc.collect()
        gc.freeze()
        log.info(
            "edge agent %s: %d machine(s), outbox %s (%d queued, stream epoch %d)",
            self.agent.id,
            len(streams),
            store.path,
            store.samples,
            store.epoch,
        )
        try:
            async with asyncio.TaskGroup() as group:
                spawn = self._spawner(group)
                spawn("mqtt", link.run)
                spawn("outbox", outbox.run)
                spawn("checkpoint", outbox.checkpoints)
                spawn("publisher", publisher.run)
                spawn("commands", dispatcher.run)
                spawn("status", partial(self._repeat_status, link, store))
                spawn("overload", self.governor.run)
                n = len(pollers)
                for i, p in enumerate(pollers):  # spread over the interval
                    p.start(i / n * p.machine.poll_interval_s)
                by_id = {s.machine_id: s for s in streams}
                polling = [
                    spawn(f"push:{'+'.join(d.machines)}", partial(d.run, _sink(by_id)))
                    for d in drivers if d.pushes
                ]
                await stop.wait()
                for p in pollers:
                    p.stop()
                await self._shutdown(polling, outbox, publisher, link)
                await _cancel_all(self._tasks)
        finally:
            for p in pollers:
                p.stop()
            await outbox.close()
            for driver in drivers:
                driver.close()
            if server is not None:
                server.stop()
        log.info(
            "edge agent %s stopped (%d samples kept in the outbox)", self.agent.id, store.samples
        )

    def _streams(self, store: Store, outbox: Outbox) -> list[MachineStream]:
        saved = store.last_states
        return [
            MachineStream(self.site, mid, self.plant.machines[mid], self.agent, outbox,
                          self.metrics, restore_tracker(saved.get(mid)),
                          times=store.latest_ms)
            for mid in self.agent.machines
        ]

    def _spawner(
        self, group: asyncio.TaskGroup
    ) -> Callable[[str, Callable[[], Awaitable[Any]]], asyncio.Task[None]]:
        def spawn(name: str, factory: Callable[[], Awaitable[Any]]) -> asyncio.Task[None]:
            task = group.create_task(supervise(name, factory, self.task_health), name=name)
            self._tasks.append(task)
            return task

        return spawn

    def _on_connected(self, link: EdgeMqttLink, dispatcher: CommandDispatcher,
                      store: Store) -> None:
        link.publish(self.status_topic, self._status(True, store.samples), retain=True)
        link.subscribe(dispatcher.topics)

    async def _shutdown(
        self,
        polling: list[asyncio.Task[None]],
        outbox: Outbox,
        publisher: Publisher,
        link: EdgeMqttLink,
    ) -> None:
        log.info("stopping: polling ends, flushing the outbox")
        await _cancel_all(polling)
        await outbox.commit()
        if link.connected.is_set():
            await publisher.drain(DRAIN_S)
            await outbox.commit()
            if not await link.publish_and_wait(self.status_topic, self._status(False), 1.0):
                log.warning("offline status not acknowledged; the broker's last will covers it")
            link.disconnect()

    def _start_status_server(
        self, link: EdgeMqttLink, outbox: Outbox, streams: list[MachineStream]
    ) -> StatusServer | None:
        if self.agent.metrics_port is None:
            return None

        def health() -> tuple[bool, dict[str, Any]]:
            connected = link.connected.is_set()
            online = sum(1 for s in streams if s.online)
            problems = self.problems()
            return connected and not problems, {
                "broker_connected": connected,
                "queue_depth": outbox.depth,
                "devices_online": online,
                "devices": len(streams),
                "problems": problems,
            }

        server = StatusServer(
            self.agent.metrics_port, health, registry=self.metrics.registry
        ).start()
        self.status_port = server.port
        return server


def _status_problems(problems: list[str]) -> list[str] | None:
    """The problems as the status contract bounds them (None when there are none)."""
    if not problems:
        return None
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS + 1
        problems = [*problems[: MAX_PROBLEMS - 1], f"and {more} more (see /healthz)"]
    return [
        p if len(p) <= MAX_PROBLEM_CHARS else p[: MAX_PROBLEM_CHARS - 3] + "..." for p in problems
    ]


def _sink(streams: dict[str, MachineStream]) -> Callable[[str, Reading], None]:
    """Where pushing drivers deliver: the machine's stream, stamped with the reading's
    source timestamp (or now)."""

    def deliver(machine_id: str, reading: Reading) -> None:
        streams[machine_id].accept(reading.ts or utc_now(), reading)

    return deliver


def restore_tracker(saved: bytes | None) -> StateTracker:
    """The last published state, so a restart neither repeats it nor moves `since`."""
    if saved is None:
        return StateTracker()
    try:
        state: StatePayload = parse(StatePayload, saved)
    except ContractError:
        return StateTracker()
    view = StateView(state.state, state.reason, state.code, state.product, state.work_order)
    return StateTracker(view, state.since)


async def _cancel_all(tasks: list[asyncio.Task[None]], attempts: int = 50) -> None:
    """Cancel tasks and wait for them. Python 3.11's asyncio.wait_for (which pymodbus uses
    per request) can swallow a cancellation that lands just as its inner future
    completes, so cancel again until every task is done (0.2 s apart, bounded)."""
    pending = {t for t in tasks if not t.done()}
    for _ in range(attempts):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
    log.error("%d task(s) ignored cancellation: %s", len(pending), [t.get_name() for t in pending])


def _shortest_interval(machine: Machine) -> float:
    """How often the machine's most frequent point is polled."""
    return min((machine.interval_of(p) for p in machine.points), default=machine.poll_interval_s)
