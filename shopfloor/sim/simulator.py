"""The simulator: every machine of a plant file served as a Modbus TCP device, or as
OPC UA nodes for a machine with `protocol: opcua` (sim/opcua_server.py).

In-process API (stable; the edge's tests use it)::

    sim = Simulator(plant, seed=1, speed=10.0)   # plant: shopfloor.shared.plant.Plant
    await sim.start()                            # listens on every (host, port) of the plant
    sim.machine_state("press1")                  # {"state": "running", "code": 1, ...}
    sim.set_fault("press1", "silent")            # normal | silent | slow[:s] | exception
    await sim.stop()

Machines are grouped by the (host, port) of their connection: one pymodbus server per
port, each machine's `device_id` a unit id on it. `bind` overrides the host listened on.
Virtual time = start_s + speed x real seconds elapsed (`origin_s`: the machines have run since
then, see sim/history.py); the pure model (line.py,
machine.py) advances on it at every tick (`tick_s` real seconds; by default 0.1 s, finer
above 10x speed, see `auto_tick_s`). Also usable as `async with Simulator(...) as sim:`.
See docs/simulator.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from pymodbus.framer import FramerType

from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Plant, Point
from shopfloor.shared.protocols.base import PointValue as Value
from shopfloor.shared.protocols.modbus import ModbusConnection
from shopfloor.shared.protocols.modbus.enums import Table, Transport
from shopfloor.shared.protocols.opcua import OpcUaConnection
from shopfloor.sim.device import SimDevice
from shopfloor.sim.errors import SimError
from shopfloor.sim.faults import Fault, FaultMode
from shopfloor.sim.history import History
from shopfloor.sim.line import PlantModel
from shopfloor.sim.opcua_server import OpcuaPlantServer
from shopfloor.sim.params import Behaviour
from shopfloor.sim.served import served_ids
from shopfloor.sim.server import PlantServer

log = logging.getLogger(__name__)

Endpoint = tuple[str, int]


class Simulator:
    """Simulated machines of `plant` (all, or `machines`) behind Modbus TCP servers."""

    def __init__(
        self,
        plant: Plant,
        seed: int = 0,
        speed: float = 1.0,
        *,
        machines: Iterable[str] | None = None,
        bind: str | None = None,
        behaviour: Behaviour | None = None,
        start_s: float | None = None,
        tick_s: float | None = None,
        analog_period_s: float = 1.0,
        origin_s: float | None = None,
    ) -> None:
        if speed <= 0:
            raise SimError(f"speed must be > 0, not {speed}")
        self.plant = plant
        self.seed = seed
        self.speed = speed
        self.tick_s = tick_s or auto_tick_s(speed)
        self._analog_slices = max(1, round(analog_period_s / self.tick_s))
        self._start_s = time.time() if start_s is None else start_s
        self._mono0 = time.monotonic()
        ids = served_ids(plant, machines)
        # With an origin, the machines have been running since then: the model is the one
        # a History from origin_s gives (the demo's backfilled past), caught up to now.
        past = History(plant, seed, self._start_s if origin_s is None else origin_s,
                       machines=ids, behaviour=behaviour)
        if origin_s is not None:
            past.model.advance(self._start_s)
        self.model: PlantModel = past.model
        self.devices: dict[str, SimDevice] = past.devices
        self.endpoints: dict[str, tuple[str, int, int]] = {}
        """machine id -> (host, port, unit id) it is served at."""
        self._by_endpoint: dict[Endpoint, dict[int, SimDevice]] = {}
        self._transports: dict[Endpoint, Transport] = {}
        self._opcua: dict[Endpoint, list[SimDevice]] = {}
        for mid in ids:
            self._place(mid, bind)
        self._servers: list[PlantServer] = []
        self._opcua_servers: list[OpcuaPlantServer] = []
        self._ticker: asyncio.Task[None] | None = None
        self._ticks = 0

    def _place(self, mid: str, bind: str | None) -> None:
        conn = self.plant.machines[mid].connection
        if isinstance(conn, OpcUaConnection):
            host, port = conn.host_port
            endpoint = (bind or host, port)
            if endpoint in self._by_endpoint:
                raise SimError(f"{mid}: port {endpoint} is Modbus, not OPC UA")
            self._opcua.setdefault(endpoint, []).append(self.devices[mid])
            self.endpoints[mid] = (endpoint[0], endpoint[1], 0)
            return
        assert isinstance(conn, ModbusConnection)  # served_ids: Modbus or OPC UA only
        endpoint = (bind or conn.host or "127.0.0.1", conn.port)
        if endpoint in self._opcua:
            raise SimError(f"{mid}: port {endpoint} is OPC UA, not Modbus")
        units = self._by_endpoint.setdefault(endpoint, {})
        transport = self._transports.setdefault(endpoint, conn.transport)
        if transport is not conn.transport:
            raise SimError(f"{mid}: port {endpoint} is {transport}, not {conn.transport}")
        if conn.device_id in units:
            other = units[conn.device_id].machine_id
            raise SimError(f"{mid} and {other} are both unit {conn.device_id} on {endpoint}")
        units[conn.device_id] = self.devices[mid]
        self.endpoints[mid] = (endpoint[0], endpoint[1], conn.device_id)

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ----- clock ---------------------------------------------------------------
    def now_s(self) -> float:
        """Virtual time (epoch seconds): start + speed x real seconds since creation."""
        return self._start_s + self.speed * (time.monotonic() - self._mono0)

    # ----- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        """Listen on every endpoint and start ticking. Raises PortInUse (nothing left
        listening) when a port cannot be opened."""
        try:
            for (host, port), units in sorted(self._by_endpoint.items()):
                framer = _FRAMERS[self._transports[(host, port)]]
                server = PlantServer(units, self._on_write, host, port, framer)
                await server.serve_forever(background=True)
                self._servers.append(server)
            for (host, port), devices in sorted(self._opcua.items()):
                opcua = OpcuaPlantServer(devices, host, port, self._on_node_write)
                self._opcua_servers.append(opcua)
                await opcua.start()
        except BaseException:
            await self.stop()
            raise
        self._ticker = asyncio.create_task(self._tick_loop(), name="sim-tick")
        log.info(
            "simulating %d machine(s) on %s at %gx speed (seed %d, tick %g s)",
            len(self.devices),
            _describe(sorted([*self._by_endpoint, *self._opcua])),
            self.speed,
            self.seed,
            self.tick_s,
        )

    async def stop(self) -> None:
        """Stop ticking and close every server and client connection."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for server in self._servers:
            await server.shutdown()
        self._servers.clear()
        for opcua in self._opcua_servers:
            await opcua.stop()
        self._opcua_servers.clear()

    async def _tick_loop(self) -> None:
        failures = FailureLog(log, "tick")
        while True:
            started = time.monotonic()
            try:
                self.tick()
                for opcua in self._opcua_servers:
                    await opcua.flush()
                failures.success()
            except Exception as exc:  # a model bug must not freeze every device
                failures.failure("%s: %s", type(exc).__name__, exc)
                log.debug("tick failed", exc_info=True)
            await asyncio.sleep(max(0.0, self.tick_s - (time.monotonic() - started)))

    def tick(self) -> None:
        """Advance the model to now and copy it into the registers (one tick)."""
        now = self.now_s()
        self.model.advance(now)
        slice_ = self._ticks % self._analog_slices
        for index, device in enumerate(self.devices.values()):
            device.refresh(now, analog=index % self._analog_slices == slice_)
        self._ticks += 1

    def _on_write(self, device: SimDevice, table: Table, address: int, values: list[Any]) -> None:
        now = self.now_s()
        self.model.advance(now)
        device.write(table, address, values, now)
        self._after_write(device, now)

    def _on_node_write(self, device: SimDevice, point: Point, raw: Value) -> None:
        now = self.now_s()
        self.model.advance(now)
        device.write_node(point, raw, now)
        self._after_write(device, now)

    def _after_write(self, device: SimDevice, now: float) -> None:
        self.model.changed(device.machine_id, now)
        for mate in self.model.line_mates(device.machine_id):  # neighbours may have moved
            self.devices[mate].refresh(now, analog=False)

    # ----- inspection and faults ----------------------------------------------
    def set_fault(self, machine_id: str, mode: str | FaultMode | Fault) -> None:
        """Set a machine's fault mode: normal, silent, slow (or 'slow:SECONDS'), exception."""
        device = self._device(machine_id)
        if isinstance(mode, FaultMode):
            mode = Fault(mode)
        device.fault = mode if isinstance(mode, Fault) else Fault.parse(mode)
        log.info("%s: fault mode %s", machine_id, device.fault.mode)

    def faults(self) -> dict[str, str]:
        """Machines not in normal mode -> their mode."""
        return {m: d.fault.mode.value for m, d in self.devices.items() if d.fault.mode != "normal"}

    def machine_state(self, machine_id: str) -> dict[str, Any]:
        """What the machine shows now: state, reason, code, counters, setpoints, fault."""
        model = self._device(machine_id).model
        self.model.advance(self.now_s())
        state, reason = model.state()
        return {
            "state": state.value,
            "reason": reason,
            "code": model.state_code(),
            "phase": model.phase.value,
            "total": model.total,
            "reject": model.reject,
            "product": model.controls.product,
            "speed_pct": model.controls.speed_pct,
            "run": model.controls.run,
            "maintenance": model.controls.maintenance,
            "fault": self._device(machine_id).fault.mode.value,
        }

    def _device(self, machine_id: str) -> SimDevice:
        device = self.devices.get(machine_id)
        if device is None:
            raise SimError(f"unknown machine {machine_id!r} (simulated: {sorted(self.devices)})")
        return device


_FRAMERS = {Transport.TCP: FramerType.SOCKET, Transport.RTU_OVER_TCP: FramerType.RTU}


def _describe(endpoints: list[Endpoint]) -> str:
    """'127.0.0.1:5020, 127.0.0.1:5021' (or the first and last of many)."""
    names = [f"{host}:{port}" for host, port in endpoints]
    if len(names) > 4:
        return f"{len(names)} ports ({names[0]} ... {names[-1]})"
    return ", ".join(names)


def auto_tick_s(speed: float) -> float:
    """Real seconds between ticks: 0.1 s (10 Hz) up to 10x speed, then finer so that a
    tick stays about one virtual second, but never under 0.02 s (50 Hz)."""
    return max(0.02, min(0.1, 1.0 / speed))
