"""The edge agent: wires the parts together and runs them as supervised, named tasks
in one TaskGroup — a poller per machine, the outbox's group commit, the publisher,
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
from shopfloor.edge.errors import EdgeError
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.modbus import Bus, bus_key
from shopfloor.edge.mqtt import MqttLink
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.poller import MachinePoller
from shopfloor.edge.publisher import Publisher
from shopfloor.edge.state import StateTracker, StateView
from shopfloor.edge.store import Store
from shopfloor.shared import topics
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.contract import AgentStatus, StatePayload, parse, utc_now
from shopfloor.shared.errors import ContractError
from shopfloor.shared.http_status import StatusServer
from shopfloor.shared.plant import Agent, Plant

log = logging.getLogger(__name__)

DRAIN_S = 2.0
"""On shutdown, how long to wait for in-flight PUBACKs (the rest stays queued)."""
INFLIGHT_RANGE = (20, 100)
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
        self._tasks: list[asyncio.Task[None]] = []

    def _status(self, online: bool, queue_depth: int | None = None) -> bytes:
        return AgentStatus(
            online=online,
            agent=self.agent.id,
            ts=utc_now(),
            machines=list(self.agent.machines),
            version=__version__,
            queue_depth=queue_depth,
        ).to_json()

    async def _repeat_status(self, link: MqttLink, store: Store) -> None:
        """Re-publish the (retained) online status every status period while connected,
        with the outbox depth, so that dashboards see a backlog drain."""
        while True:
            await asyncio.sleep(self.agent.status_period_s)
            if link.connected.is_set():
                link.publish(self.status_topic, self._status(True, store.samples), retain=True)

    async def run(self, stop: asyncio.Event) -> None:
        store = Store(
            outbox_path_of(self.agent), self.agent.queue.max_samples, self.agent.queue.when_full
        )
        store.forget_commands(time.time() - COMMAND_IDS_KEPT_S)
        outbox = Outbox(store, self.metrics)
        inflight = min(max(self.agent.publish_inflight, INFLIGHT_RANGE[0]), INFLIGHT_RANGE[1])
        link = MqttLink(
            self.plant.broker,
            f"shopfloor-edge-{self.site}-{self.agent.id}",
            inflight=inflight,
            backoff_max_s=self.agent.backoff_max_s,
        )
        link.set_will(self.status_topic, self._status(False))
        publisher = Publisher(outbox, link, inflight, self.metrics)
        buses, pollers = self._pollers(store, outbox)
        dispatcher = CommandDispatcher(
            self.site,
            {p.machine_id: (p.machine, buses[bus_key(p.machine_id, p.machine.connection)])
             for p in pollers},
            outbox,
            self.metrics,
        )
        link.on_message = dispatcher.on_message
        link.on_connected = lambda: self._on_connected(link, dispatcher, store)
        self.metrics.broker_connected.set_function(lambda: float(link.connected.is_set()))
        self.metrics.queue_depth.set_function(lambda: float(store.samples))
        server = self._start_status_server(link, outbox, pollers)
        # The plant model, clients and tasks live as long as the agent: keep them out of
        # the cyclic GC's full collections, which otherwise stall every poller for tens of
        # milliseconds with 1,000 machines.
        gc.collect()
        gc.freeze()
        log.info(
            "edge agent %s: %d machine(s), outbox %s (%d queued)",
            self.agent.id,
            len(pollers),
            store.path,
            store.samples,
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
                n = len(pollers)
                polling = [
                    spawn(f"poll:{p.machine_id}", partial(p.run, i / n * p.machine.poll_interval_s))
                    for i, p in enumerate(pollers)
                ]
                await stop.wait()
                await self._shutdown(polling, outbox, publisher, link)
                await _cancel_all(self._tasks)
        finally:
            await outbox.close()
            for bus in buses.values():
                bus.close()
            if server is not None:
                server.stop()
        log.info(
            "edge agent %s stopped (%d samples kept in the outbox)", self.agent.id, store.samples
        )

    def _pollers(self, store: Store, outbox: Outbox) -> tuple[dict[str, Bus], list[MachinePoller]]:
        buses: dict[str, Bus] = {}
        pollers = []
        saved = store.states()
        for machine_id in self.agent.machines:
            machine = self.plant.machines[machine_id]
            key = bus_key(machine_id, machine.connection)
            bus = buses.setdefault(key, Bus(key, machine.connection, self.agent.backoff_max_s))
            tracker = restore_tracker(saved.get(machine_id))
            pollers.append(
                MachinePoller(
                    self.site, machine_id, machine, bus, self.agent, outbox, self.metrics, tracker
                )
            )
        return buses, pollers

    def _spawner(
        self, group: asyncio.TaskGroup
    ) -> Callable[[str, Callable[[], Awaitable[Any]]], asyncio.Task[None]]:
        def spawn(name: str, factory: Callable[[], Awaitable[Any]]) -> asyncio.Task[None]:
            task = group.create_task(_supervise(name, factory), name=name)
            self._tasks.append(task)
            return task

        return spawn

    def _on_connected(self, link: MqttLink, dispatcher: CommandDispatcher, store: Store) -> None:
        link.publish(self.status_topic, self._status(True, store.samples), retain=True)
        link.subscribe(dispatcher.topics)

    async def _shutdown(
        self,
        polling: list[asyncio.Task[None]],
        outbox: Outbox,
        publisher: Publisher,
        link: MqttLink,
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
        self, link: MqttLink, outbox: Outbox, pollers: list[MachinePoller]
    ) -> StatusServer | None:
        if self.agent.metrics_port is None:
            return None

        def health() -> tuple[bool, dict[str, Any]]:
            connected = link.connected.is_set()
            online = sum(1 for p in pollers if p.online)
            return connected, {
                "broker_connected": connected,
                "queue_depth": outbox.depth,
                "devices_online": online,
                "devices": len(pollers),
            }

        server = StatusServer(
            self.agent.metrics_port, health, registry=self.metrics.registry
        ).start()
        self.status_port = server.port
        return server


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


async def _supervise(name: str, factory: Callable[[], Awaitable[Any]]) -> None:
    """Run a task; if it crashes, log it and start it again after a backoff."""
    backoff = Backoff(0.5, 10.0)
    while True:
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a supervisor restarts whatever crashed
            delay = backoff.next_delay()
            log.exception("task %s crashed; restarting in %.1f s", name, delay)
            await asyncio.sleep(delay)
