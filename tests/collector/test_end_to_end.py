"""simulator -> edge agent -> mosquitto -> collector -> InfluxDB, all real: the values
stored equal what the simulated machines show (a Modbus machine's registers read back
over Modbus and decoded with the Modbus codec; an OPC UA machine's nodes read back with
an OPC UA client). The simulator ticks once (--tick 3600) so the values hold still."""

from __future__ import annotations

import asyncio
from typing import Any

from asyncua import Client
from pymodbus.client import ModbusTcpClient

from shopfloor.edge.drivers.opcua.convert import to_value
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import Machine, Plant
from shopfloor.shared.protocols.modbus.codec import decode
from shopfloor.shared.protocols.modbus.enums import Table
from shopfloor.shared.protocols.opcua import OpcUaConnection, OpcUaPoint, browse_steps
from tests.collector.helpers import seqs_stored, wait_for
from tests.harness.plants import example_plant_for
from tests.harness.processes import ComponentProcess, health_url, sim_healthy


def read_nodes(machine: Machine) -> dict[str, Any]:
    """Every point of an OPC UA machine, read with an OPC UA client (engineering value,
    converted as the edge converts it)."""
    conn = machine.connection
    assert isinstance(conn, OpcUaConnection)

    async def read() -> dict[str, Any]:
        async with Client(conn.endpoint, timeout=10) as client:
            values = {}
            for point in machine.points:
                assert isinstance(point, OpcUaPoint)
                node = (client.get_node(point.node_id) if point.node_id else
                        await client.nodes.objects.get_child(browse_steps(point.browse_path or "")))
                values[point.name] = to_value(point, (await node.read_data_value()).Value)
            return values

    return asyncio.run(read())


def read_device(machine: Machine) -> dict[str, Any]:
    """Every point of the machine as its simulated device shows it."""
    if isinstance(machine.connection, OpcUaConnection):
        return read_nodes(machine)
    return read_registers(machine)


def read_registers(machine: Machine) -> dict[str, Any]:
    """Every point of a Modbus machine, read over Modbus TCP and decoded (engineering value)."""
    conn = machine.connection
    client = ModbusTcpClient(conn.host or "127.0.0.1", port=conn.port, timeout=2)
    assert client.connect()
    try:
        values = {}
        for point in machine.points:
            read = {
                Table.HOLDING: client.read_holding_registers,
                Table.INPUT: client.read_input_registers,
                Table.COIL: client.read_coils,
                Table.DISCRETE_INPUT: client.read_discrete_inputs,
            }[point.table]
            reply = read(point.address, count=point.count, device_id=conn.device_id)
            assert not reply.isError(), (point.name, reply)
            raw = reply.bits[: point.count] if point.table.is_bit else reply.registers
            values[point.name] = decode(point, list(raw))
        return values
    finally:
        client.close()


def last_stored(influx: Any, plant: Plant, machine_id: str) -> dict[str, Any]:
    series = influx.query(f"SELECT last(*) FROM telemetry WHERE machine = '{machine_id}'",
                          database=plant.database.database)
    row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
    return {k.removeprefix("last_"): v for k, v in row.items() if k.startswith("last_")}


def test_simulator_edge_collector_influxdb_values_equal_registers(
    mosquitto, influxdb, tmp_path, run_collector
):
    plant_file = example_plant_for(tmp_path, mosquitto.port, influxdb.url)
    plant = load_plant(plant_file)
    sim = ComponentProcess("sim", ["sim", str(plant_file), "--tick", "3600"], tmp_path,
                           healthy=sim_healthy(plant)).start()
    collector = run_collector(plant)
    agent = plant.agents[0]
    edge = ComponentProcess("edge", ["edge", str(plant_file), "--agent", agent.id], tmp_path,
                            healthy=health_url(agent.metrics_port))
    try:
        edge.start()
        for machine_id in plant.machines:
            wait_for(lambda m=machine_id: len(seqs_stored(influxdb, plant.database.database, m))
                     >= 3, 30)
        for machine_id, machine in plant.machines.items():
            shown = read_device(machine)
            stored = last_stored(influxdb, plant, machine_id)
            for name, value in shown.items():
                if isinstance(value, float):
                    assert abs(stored[name] - value) <= 1e-9 * max(1.0, abs(value)), name
                else:
                    assert stored[name] == value, (machine_id, name)
            seqs = seqs_stored(influxdb, plant.database.database, machine_id)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), machine_id
        health = collector.health()[1]
        assert health["lost_samples"] == 0 and health["dead_letters"] == 0
    finally:
        edge.stop()
        sim.stop()
