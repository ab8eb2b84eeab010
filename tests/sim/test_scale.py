"""1,000 simulated devices in one process (5 ports x 200 unit ids), read over real TCP."""

from __future__ import annotations

import asyncio

import pytest
from pymodbus.client import AsyncModbusTcpClient

from shopfloor.shared.loader import parse_plant
from shopfloor.shared.protocols.modbus.codec import decode
from shopfloor.sim.generate import plant_data
from shopfloor.sim.simulator import Simulator
from tests.harness.services import free_port

pytestmark = pytest.mark.anyio


async def test_a_thousand_devices_answer_from_first_to_last() -> None:
    data = plant_data(machines=1000, points=20, lines=10, per_port=200, base_port=1)
    ports = {old: free_port() for old in range(1, 6)}
    for machine in data["machines"].values():
        machine["connection"]["port"] = ports[machine["connection"]["port"]]
    plant = parse_plant(data)
    sim = Simulator(plant, seed=2, speed=10.0)
    await sim.start()
    try:
        assert len(sim.devices) == 1000
        picks = ["m0001", "m0200", "m0201", "m0500", "m0999", "m1000"]
        results = await asyncio.gather(*(_read(sim, mid) for mid in picks))
        work_orders = set()
        for mid, (state, work_order) in zip(picks, results, strict=True):
            assert state in plant.machines[mid].state.codes  # type: ignore[union-attr]
            assert work_order == sim.devices[mid].model.controls.work_order  # the right device
            work_orders.add(work_order)
        assert len(work_orders) == len(picks)
    finally:
        await sim.stop()


async def _read(sim: Simulator, machine_id: str) -> tuple[int, str]:
    """(state code, work order) of a machine, read over its own port and unit id."""
    host, port, unit = sim.endpoints[machine_id]
    points = sim.plant.machines[machine_id].points
    async with AsyncModbusTcpClient(host, port=port, timeout=2, retries=0) as client:
        rr = await client.read_holding_registers(0, count=24, device_id=unit)
    assert not rr.isError(), (machine_id, rr)
    state = decode(points[0], rr.registers[0:1])
    work_order = decode(points[9], rr.registers[16:22])
    assert isinstance(state, int) and isinstance(work_order, str)
    return state, work_order
