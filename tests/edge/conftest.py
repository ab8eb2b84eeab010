"""Edge test fixtures: real pymodbus servers (in a background thread), a plant file
aimed at the test broker and servers, the agent running in a thread (or as a
subprocess where a test kills it), and an MQTT subscriber that records messages."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from shopfloor.edge.agent import EdgeAgent
from shopfloor.shared.loader import parse_plant
from tests.harness.loops import LoopThread
from tests.harness.services import LOOPBACK, free_port

FC = {"coil": 1, "discrete_input": 2, "holding": 3, "input": 4}


class ModbusServer:
    """A pymodbus TCP server with `devices` unit ids, run on its own loop in a thread."""

    def __init__(
        self,
        device_ids: tuple[int, ...] = (1,),
        port: int | None = None,
        framer: FramerType = FramerType.SOCKET,
        serial_port: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.device_ids = device_ids
        self.framer = framer
        self.serial_port = serial_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusTcpServer | None = None
        self._thread: threading.Thread | None = None

    def _context(self) -> ModbusServerContext:
        def device() -> ModbusDeviceContext:
            return ModbusDeviceContext(
                co=ModbusSequentialDataBlock(1, [False] * 64),
                di=ModbusSequentialDataBlock(1, [False] * 64),
                hr=ModbusSequentialDataBlock(1, [0] * 200),
                ir=ModbusSequentialDataBlock(1, [0] * 200),
            )

        return ModbusServerContext(devices={i: device() for i in self.device_ids})

    def start(self) -> ModbusServer:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._server = self._make_server()
            await self._server.serve_forever(background=True)
            ready.set()
            while self._server is not None:
                await asyncio.sleep(0.05)

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        assert ready.wait(10), "modbus server did not start"
        return self

    def _make_server(self) -> Any:
        if self.serial_port is not None:
            return ModbusSerialServer(
                self._context(), port=self.serial_port, baudrate=19200, timeout=0.05
            )
        return ModbusTcpServer(self._context(), address=(LOOPBACK, self.port), framer=self.framer)

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    def set(self, device_id: int, table: str, address: int, values: list[Any]) -> None:
        assert self._server is not None
        self._call(self._server.async_setValues(device_id, FC[table], address, values))

    def get(self, device_id: int, table: str, address: int, count: int) -> list[Any]:
        assert self._server is not None
        return list(self._call(self._server.async_getValues(device_id, FC[table], address, count)))

    def stop(self) -> None:
        if self._server is None:
            return
        server = self._server
        self._call(server.shutdown())
        self._server = None
        assert self._thread is not None
        self._thread.join(5)


@pytest.fixture
def modbus_server() -> Iterator[ModbusServer]:
    server = ModbusServer((1, 2)).start()
    yield server
    server.stop()


POINTS = [
    {"name": "state", "table": "holding", "address": 0, "type": "uint16"},
    {"name": "total_count", "table": "holding", "address": 1, "type": "uint32"},
    {
        "name": "product",
        "table": "holding",
        "address": 3,
        "type": "uint16",
        "writable": True,
        "min": 1,
        "max": 3,
    },
    {
        "name": "speed_pct",
        "table": "holding",
        "address": 4,
        "type": "uint16",
        "writable": True,
        "min": 10,
        "max": 120,
    },
    {"name": "temperature", "table": "holding", "address": 5, "type": "float32", "order": "CDAB"},
    {"name": "power", "table": "holding", "address": 7, "type": "int32", "scale": 0.01},
    {"name": "energy", "table": "input", "address": 0, "type": "uint64", "order": "DCBA"},
    {
        "name": "work_order",
        "table": "holding",
        "address": 20,
        "type": "string",
        "length": 8,
        "writable": True,
    },
    {"name": "run", "table": "coil", "address": 0, "type": "bool", "writable": True},
    {"name": "door_open", "table": "discrete_input", "address": 0, "type": "bool"},
]


def machine_spec(port: int, device_id: int = 1, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "line": "line1",
        "connection": {
            "transport": "tcp",
            "host": LOOPBACK,
            "port": port,
            "device_id": device_id,
            "timeout_s": 0.3,
        },
        "poll_interval_s": 0.2,
        "points": POINTS,
        "state": {
            "point": "state",
            "codes": {0: {"state": "stopped", "reason": "operator_stop"}, 1: {"state": "running"}},
        },
        "counters": {"total": "total_count"},
        "products": [
            {"id": "A", "code": 1, "ideal_cycle_time_s": 2.0},
            {"id": "B", "code": 2, "ideal_cycle_time_s": 2.5},
        ],
        "control": {
            "product": "product",
            "work_order": "work_order",
            "run": "run",
            "speed": "speed_pct",
        },
    }
    spec.update(extra)
    return spec


def plant_data(
    site: str, broker_port: int, machines: dict[str, dict[str, Any]], state_dir: Path, **agent: Any
) -> dict[str, Any]:
    return {
        "version": 1,
        "site": {"id": site},
        "broker": {"host": LOOPBACK, "port": broker_port, "keepalive_s": 5},
        "lines": [{"id": "line1", "stations": sorted(machines)}],
        "machines": machines,
        "agents": [
            {
                "id": "edge1",
                "machines": sorted(machines),
                "state_dir": str(state_dir),
                "offline_after_failures": 2,
                "backoff_max_s": 0.5,
                **agent,
            }
        ],
    }


def write_plant(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


class AgentThread(LoopThread):
    """EdgeAgent.run on its own event loop in a thread; stop() is a graceful SIGTERM."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.agent = EdgeAgent(parse_plant(data), "edge1")
        super().__init__(self.agent.run)

    def start(self) -> AgentThread:
        super().start()
        return self

    def stop(self, timeout_s: float = 15) -> None:
        super().stop(timeout_s)
        if self.error is not None:
            raise self.error


@pytest.fixture
def run_agent() -> Iterator[Callable[[dict[str, Any]], AgentThread]]:
    agents: list[AgentThread] = []

    def start(data: dict[str, Any]) -> AgentThread:
        agent = AgentThread(data).start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()


class Recorder:
    """A real MQTT subscriber (its own persistent session) that records messages."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"rec-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect(LOOPBACK, port, clean_start=False, properties=props)
        self.client.loop_start()
        assert subscribed.wait(10), "subscription not acknowledged"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def payloads(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting; {len(self.messages)} message(s) recorded")

    def publish(self, topic: str, payload: bytes | str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def recorder_factory() -> Iterator[Callable[[int, str], Recorder]]:
    made: list[Recorder] = []

    def make(port: int, topic_filter: str) -> Recorder:
        rec = Recorder(port, topic_filter)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close()


class SimThread:
    """The project's simulator (shopfloor.sim.Simulator) on its own loop in a thread."""

    def __init__(self, data: dict[str, Any], speed: float = 1.0) -> None:
        from shopfloor.sim.simulator import Simulator

        self.sim = Simulator(parse_plant(data), seed=1, speed=speed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        await self.sim.start()
        self._ready.set()
        await self._done.wait()
        await self.sim.stop()

    def start(self) -> SimThread:
        self._thread.start()
        assert self._ready.wait(15), "simulator did not start"
        return self

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def stop(self) -> None:
        if self._loop is not None and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(10)


def generated_plant(
    site: str,
    broker_port: int,
    machines: int,
    state_dir: Path,
    poll_interval_s: float = 0.2,
    timeout_s: float = 0.5,
) -> dict[str, Any]:
    """A plant from the simulator's generator, aimed at the test broker and a free port."""
    from shopfloor.sim.generate import plant_data as generated

    data = generated(machines=machines, base_port=free_port(), site=site)
    data["broker"] = {"host": LOOPBACK, "port": broker_port, "keepalive_s": 5}
    for machine in data["machines"].values():
        machine["poll_interval_s"] = poll_interval_s
        machine["connection"]["timeout_s"] = timeout_s
    data["agents"][0].update(state_dir=str(state_dir), offline_after_failures=2, backoff_max_s=0.5)
    return data


@pytest.fixture
def run_sim() -> Iterator[Callable[..., SimThread]]:
    sims: list[SimThread] = []

    def start(data: dict[str, Any], speed: float = 1.0) -> SimThread:
        sim = SimThread(data, speed).start()
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()
