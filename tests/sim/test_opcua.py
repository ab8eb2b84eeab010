"""The simulator over real OPC UA on loopback (asyncua's client): a machine with
`protocol: opcua` is served as nodes of the types its points say, at the NodeIds and
browse paths the plant file names, with the same machine behaviour as over Modbus
(state, counters, setpoints written through to the model) and PLC-like refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncua import Client, ua

from shopfloor.shared.loader import parse_plant
from shopfloor.sim.simulator import Simulator
from tests.harness.services import free_port
from tests.sim.conftest import CALM

pytestmark = pytest.mark.anyio


def opcua_plant(port: int) -> dict[str, Any]:
    endpoint = f"opc.tcp://127.0.0.1:{port}/"
    points = [
        {"name": "state", "node_id": "ns=2;s=cell.state", "type": "uint16"},
        {"name": "total_count", "browse_path": "2:Line2/2:cell/2:total", "type": "uint32"},
        {"name": "speed_pct", "node_id": "ns=2;s=cell.speed", "type": "float32",
         "writable": True, "min": 10, "max": 120},
        {"name": "product", "node_id": "ns=2;s=cell.product", "type": "uint16",
         "writable": True, "min": 1, "max": 9},
        {"name": "run", "node_id": "ns=2;s=cell.run", "type": "bool", "writable": True},
        {"name": "clock", "node_id": "ns=2;s=cell.clock", "type": "datetime"},
        {"name": "power", "node_id": "ns=2;i=5001", "type": "float64", "unit": "kW"},
    ]
    return {
        "site": {"id": "s"},
        "lines": [{"id": "line2", "stations": ["cell"]}],
        "machines": {"cell": {
            "line": "line2",
            "connection": {"protocol": "opcua", "endpoint": endpoint},
            "points": points,
            "state": {"point": "state", "codes": {0: {"state": "stopped"},
                                                  1: {"state": "running"}}},
            "counters": {"total": "total_count"},
            "products": [{"id": "A", "code": 1, "ideal_cycle_time_s": 1.0},
                         {"id": "B", "code": 2, "ideal_cycle_time_s": 1.5}],
            "control": {"run": "run", "speed": "speed_pct", "product": "product"},
        }},
    }


@pytest.fixture
async def served() -> AsyncIterator[tuple[Simulator, Client]]:
    port = free_port()
    sim = Simulator(parse_plant(opcua_plant(port)), seed=1, speed=20.0, behaviour=CALM)
    await sim.start()
    client = Client(f"opc.tcp://127.0.0.1:{port}/", timeout=10)
    await client.connect()
    yield sim, client
    await client.disconnect()
    await sim.stop()


async def _read(client: Client, node: str) -> Any:
    return await client.get_node(node).read_value()


async def test_nodes_show_the_machine_model(served: tuple[Simulator, Client]) -> None:
    sim, client = served
    total = await client.nodes.objects.get_child(["2:Line2", "2:cell", "2:total"])
    first = await total.read_value()
    assert await _read(client, "ns=2;s=cell.state") == 1  # running
    value = await client.get_node("ns=2;s=cell.speed").read_data_value()
    assert value.Value.VariantType == ua.VariantType.Float and value.Value.Value == 100.0
    assert value.SourceTimestamp is not None
    assert (await client.get_node("ns=2;i=5001").read_data_type_as_variant_type()
            == ua.VariantType.Double)
    assert (await client.get_node("ns=2;s=cell.clock").read_data_type_as_variant_type()
            == ua.VariantType.DateTime)
    for _ in range(100):  # the tick copies the model in: counts go up at 20x
        if await total.read_value() > first:
            break
        await __import__("asyncio").sleep(0.1)
    assert await total.read_value() > first
    assert sim.machine_state("cell")["total"] >= await total.read_value()


async def test_writes_reach_the_model_and_bad_ones_are_refused(
    served: tuple[Simulator, Client],
) -> None:
    sim, client = served
    speed = client.get_node("ns=2;s=cell.speed")
    await speed.write_value(ua.Variant(55.0, ua.VariantType.Float))
    assert sim.machine_state("cell")["speed_pct"] == 55.0
    assert await speed.read_value() == 55.0
    with pytest.raises(ua.UaStatusCodeError) as refused:
        await speed.write_value(ua.Variant(500.0, ua.VariantType.Float))
    assert refused.value.code == ua.StatusCodes.BadOutOfRange
    with pytest.raises(ua.UaStatusCodeError) as unknown:
        await client.get_node("ns=2;s=cell.product").write_value(
            ua.Variant(7, ua.VariantType.UInt16))
    assert unknown.value.code == ua.StatusCodes.BadOutOfRange  # no product 7
    assert sim.machine_state("cell")["speed_pct"] == 55.0
    await client.get_node("ns=2;s=cell.run").write_value(ua.Variant(False, ua.VariantType.Boolean))
    assert sim.machine_state("cell")["run"] is False
    assert sim.machine_state("cell")["state"] == "stopped"
