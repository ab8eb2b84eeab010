"""End to end: the API, the real edge agent and the simulator (Modbus TCP), on the real
broker, with the collector writing to InfluxDB. Writes through the API are read back
directly from the simulated device; start and stop change the machine's state on the
state topic and in InfluxDB; a command sent while the edge is down times out and is
refused as expired when the edge comes back."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from shopfloor.edge.agent import EdgeAgent
from shopfloor.shared.plant import Plant
from shopfloor.sim.simulator import Simulator
from tests.api.harness import (
    COMMAND_TIMEOUT_S,
    ApiServer,
    create_database,
    load,
    make_keys,
    plant_data,
    wait_for,
)
from tests.harness.loops import LoopThread
from tests.harness.processes import ComponentProcess, health_url


class SimThread(LoopThread):
    """The simulator on its own loop; `fault(machine, mode)` switches a device's fault."""

    def __init__(self, plant: Plant) -> None:
        self.simulator = Simulator(plant, seed=3, tick_s=0.05)

        async def run(stop: asyncio.Event) -> None:
            await self.simulator.start()
            try:
                await stop.wait()
            finally:
                await self.simulator.stop()

        super().__init__(run)

    def fault(self, machine: str, mode: str) -> None:
        async def switch() -> None:
            self.simulator.set_fault(machine, mode)

        self.call(switch())


def _edge(plant: Plant) -> LoopThread:
    return LoopThread(lambda stop: EdgeAgent(plant, "edge1").run(stop)).start()


@dataclass
class Rig:
    plant: Plant
    keys: dict[str, str]
    api: ApiServer
    sim: SimThread
    edge: LoopThread
    collector: ComponentProcess

    def client(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=self.api.url, headers={"X-API-Key": self.keys[role]},
                            timeout=30)

    def modbus(self) -> ModbusTcpClient:
        conn = self.plant.machines["press1"].connection
        client = ModbusTcpClient(conn.host or "127.0.0.1", port=conn.port, timeout=2)
        assert client.connect()
        return client

    def device_id(self, machine: str) -> int:
        return self.plant.machines[machine].connection.device_id


@pytest.fixture(scope="module")
def rig(mosquitto: Any, influxdb: Any, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("api-e2e")
    keys = make_keys()
    data = plant_data(workdir, mosquitto.port, influxdb.url, keys, timeout_s=COMMAND_TIMEOUT_S)
    plant = load(data)
    create_database(influxdb.url, plant.database.database)
    plant_file = workdir / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(data))
    with contextlib.ExitStack() as running:  # stops what started, also when setup fails
        collector = ComponentProcess("collector", ["collector", str(plant_file)], workdir,
                                     health_url(data["collector"]["metrics_port"]))
        running.callback(collector.stop)
        collector.start()
        sim = SimThread(plant).start()
        running.callback(sim.stop)
        rig = Rig(plant, keys, None, sim, _edge(plant), collector)  # type: ignore[arg-type]
        running.callback(lambda: rig.edge.stop())  # the edge may be replaced by a test
        # The API's copy of the plant file allows weld1 speeds the edge's copy refuses (a
        # plant file out of step): the edge checks every write again.
        lax = copy.deepcopy(data)
        speed = next(p for p in lax["machines"]["weld1"]["points"] if p["name"] == "speed_pct")
        speed["max"] = 200
        rig.api = ApiServer(load(lax), data["api"]["port"]).start()
        running.callback(rig.api.stop)
        with rig.client() as admin:
            wait_for(lambda: all(s["online"] and s["values"] for s in
                                 admin.get("/api/v1/state").json()["items"]),
                     20, "the edge polling every simulated machine")
        yield rig


def _state(client: httpx.Client, machine: str) -> dict[str, Any]:
    return client.get(f"/api/v1/machines/{machine}/state").json()


def test_setpoint_is_read_back_from_the_device(rig: Rig) -> None:
    with rig.client("operator") as op:
        r = op.post("/api/v1/machines/weld1/setpoint", json={"point": "speed_pct", "value": 77})
    assert r.status_code == 200, r.text
    assert r.json()["commands"][0]["readback"] == 77
    with rig.modbus() as modbus:
        address = rig.plant.machines["weld1"].point("speed_pct").address  # type: ignore[union-attr]
        registers = modbus.read_holding_registers(address, count=1,
                                                  device_id=rig.device_id("weld1"))
    assert not registers.isError() and registers.registers == [77]


def test_changeover_writes_code_and_work_order_to_device(rig: Rig) -> None:
    with rig.client("supervisor") as sup:
        r = sup.post("/api/v1/machines/pack1/changeover",
                     json={"product": "C", "work_order": "WO-9"})
    assert r.status_code == 200, r.text
    assert [c["readback"] for c in r.json()["commands"]] == [3, "WO-9"]
    with rig.modbus() as modbus:
        product = modbus.read_holding_registers(5, count=1, device_id=rig.device_id("pack1"))
    assert product.registers == [3]


def test_stop_and_start_change_the_machine_state(rig: Rig) -> None:
    with rig.client("operator") as op:
        asked = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        assert op.post("/api/v1/machines/press1/stop").status_code == 200
        stopped = wait_for(lambda: (s := _state(op, "press1"))["state"] == "stopped" and s,
                           10, "stopped on the state topic")
        assert stopped["reason"] == "operator_stop"
        with rig.modbus() as modbus:
            assert modbus.read_coils(0, count=1, device_id=1).bits[0] is False
        assert op.post("/api/v1/machines/press1/start").status_code == 200
        wait_for(lambda: _state(op, "press1")["state"] not in ("stopped", None), 10,
                 "running again")

        def stored() -> list[dict[str, Any]]:  # via the collector into InfluxDB
            items = op.get("/api/v1/machines/press1/states").json()["items"]
            return [c for c in items if c["state"] == "stopped"
                    and c["reason"] == "operator_stop"
                    and dt.datetime.fromisoformat(c["time"]) >= asked]

        wait_for(stored, 15, "the stop stored in InfluxDB")


def test_maintenance_interlock_on_the_device(rig: Rig) -> None:
    with rig.client("maintenance") as maint, rig.client("operator") as op:
        assert maint.post("/api/v1/machines/paint1/maintenance", json={"on": True}
                          ).status_code == 200
        state = wait_for(lambda: (s := _state(op, "paint1"))["state"] == "planned_stop" and s,
                         10, "planned stop")
        assert state["maintenance"] is True and state["reason"] == "maintenance"
        refused = op.post("/api/v1/machines/paint1/start")
        assert refused.status_code == 409
        assert maint.post("/api/v1/machines/paint1/maintenance", json={"on": False}
                          ).status_code == 200
        assert op.post("/api/v1/machines/paint1/start").status_code == 200


def test_expired_command_is_not_executed_when_the_edge_returns(rig: Rig) -> None:
    address = rig.plant.machines["solo1"].point("speed_pct").address  # type: ignore[union-attr]
    device = rig.device_id("solo1")
    with rig.modbus() as modbus:
        before = modbus.read_holding_registers(address, count=1, device_id=device).registers
    assert before != [33]
    rig.edge.stop()
    with rig.client("admin") as admin:
        wait_for(lambda: _state(admin, "solo1")["online"] is False, 10, "edge offline")
        r = admin.post("/api/v1/machines/solo1/setpoint",
                       json={"point": "speed_pct", "value": 33})
        assert r.status_code == 504 and r.json()["status"] == "timeout"
        command_id = r.json()["commands"][0]["id"]
        rig.edge = _edge(rig.plant)  # back: its session still holds the command
        late = wait_for(lambda: (c := admin.get(f"/api/v1/commands/{command_id}").json())
                        ["late"] and c, 15, "late result")
    assert late["status"] == "expired"
    with rig.modbus() as modbus:
        after = modbus.read_holding_registers(address, count=1, device_id=device).registers
    assert after == before


def test_edge_rechecks_writes_against_its_plant_file(rig: Rig) -> None:
    with rig.client("operator") as op:
        r = op.post("/api/v1/machines/weld1/setpoint", json={"point": "speed_pct", "value": 150})
    assert r.status_code == 409 and r.json()["status"] == "rejected"
    assert "above max" in r.json()["detail"]
    with rig.modbus() as modbus:
        speed = modbus.read_holding_registers(6, count=1, device_id=rig.device_id("weld1"))
    assert speed.registers != [150]


def test_device_failure_answers_502(rig: Rig) -> None:
    rig.sim.fault("pack1", "exception")
    try:
        with rig.client("operator") as op:
            r = op.post("/api/v1/machines/pack1/setpoint",
                        json={"point": "speed_pct", "value": 44})
    finally:
        rig.sim.fault("pack1", "normal")
    assert r.status_code == 502 and r.json()["status"] == "failed"
    assert "modbus" in r.json()["detail"]


def test_concurrent_conflicting_setpoints_each_read_back_their_own_value(rig: Rig) -> None:
    """50 and 110 asked at once, many times: every `done` reads back the value its own
    call asked (the edge writes a machine's points one at a time), and the device holds
    the value of the call that finished last."""
    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=rig.api.url, timeout=30,
                                     headers={"X-API-Key": rig.keys["operator"]}) as client:
            return list(await asyncio.gather(*(
                client.post("/api/v1/machines/press1/setpoint",
                            json={"point": "speed_pct", "value": value})
                for _ in range(4) for value in (50, 110))))

    answers = [a for _ in range(3) for a in asyncio.run(race())]
    assert len(answers) == 24
    for answer in answers:
        assert answer.status_code == 200, answer.text
        [command] = answer.json()["commands"]
        assert command["readback"] == command["value"], command
    with rig.modbus() as modbus:
        speed = modbus.read_holding_registers(6, count=1, device_id=rig.device_id("press1"))
    assert speed.registers[0] in (50, 110)
