"""The simulator over real Modbus TCP on loopback (pymodbus' client, raw sockets):
register maps, write read-back, PLC-like exceptions, pipelining, fault modes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from shopfloor.shared.loader import parse_plant
from shopfloor.shared.protocols.modbus.codec import decode
from shopfloor.sim.simulator import Simulator
from tests.harness.services import free_port
from tests.sim.conftest import CALM, example_on_port, example_on_port_data

pytestmark = pytest.mark.anyio
UNITS = {"press1": 1, "weld1": 2, "paint1": 3, "pack1": 4}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(example_on_port(), seed=1, speed=20.0, behaviour=CALM)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[AsyncModbusTcpClient]:
    _, port, _ = sim.endpoints["press1"]
    async with AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0) as modbus:
        yield modbus


async def holding(client: AsyncModbusTcpClient, machine: str, sim: Simulator) -> dict:
    rr = await client.read_holding_registers(0, count=22, device_id=UNITS[machine])
    assert not rr.isError(), rr
    points = sim.plant.machines[machine].points
    return {
        p.name: decode(p, list(rr.registers[p.address : p.end]))
        for p in points
        if p.table == "holding"
    }


async def test_every_machine_serves_its_register_map(sim: Simulator, client) -> None:
    first = {m: await holding(client, m, sim) for m in UNITS}
    await asyncio.sleep(0.6)  # 12 virtual seconds: every machine makes parts
    for machine, before in first.items():
        after = await holding(client, machine, sim)
        codes = sim.plant.machines[machine].state.codes  # type: ignore[union-attr]
        assert after["state"] in codes
        assert after["total_count"] > before["total_count"]
        assert after["speed_pct"] == 100 and after["product"] == 1
        assert 0 < after["temperature"] < 100
        assert after["work_order"].startswith("WO-")
    cycle = await client.read_input_registers(0, count=1, device_id=1)
    assert 1.33 <= cycle.registers[0] / 1000 <= 1.54  # press1's ideal 1.4 s, jittered


async def test_writes_read_back_and_drive_the_model(sim: Simulator, client) -> None:
    assert not (await client.write_register(6, 60, device_id=1)).isError()
    assert (await client.read_holding_registers(6, count=1, device_id=1)).registers == [60]
    assert sim.machine_state("press1")["speed_pct"] == 60
    assert not (await client.write_coil(0, False, device_id=2)).isError()  # weld1 run off
    assert (await client.read_coils(0, count=1, device_id=2)).bits[0] is False
    assert (await holding(client, "weld1", sim))["state"] == 0  # stopped, operator_stop
    assert not (await client.write_coil(2, True, device_id=3)).isError()  # paint1 maintenance
    assert (await holding(client, "paint1", sim))["state"] == 40
    assert not (await client.write_register(5, 2, device_id=4)).isError()  # pack1 product B
    after = await holding(client, "pack1", sim)
    assert after["product"] == 2 and after["state"] == 30  # changeover
    assert not (await client.write_coil(0, True, device_id=2)).isError()
    assert (await holding(client, "weld1", sim))["state"] in (1, 2)


async def test_bad_writes_get_plc_exceptions(sim: Simulator, client) -> None:
    over = await client.write_register(6, 121, device_id=1)  # speed_pct max 120
    assert over.isError() and over.exception_code == 3
    both = await client.write_registers(5, [2, 500], device_id=1)
    assert both.isError() and both.exception_code == 3
    assert (await client.read_holding_registers(5, count=2, device_id=1)).registers == [1, 100]
    read_only = await client.write_register(0, 5, device_id=1)
    assert read_only.isError() and read_only.exception_code == 2
    unmapped = await client.read_holding_registers(100, count=2, device_id=1)
    assert unmapped.isError() and unmapped.exception_code == 2
    unknown_unit = await client.read_holding_registers(0, count=2, device_id=99)
    assert unknown_unit.isError() and unknown_unit.exception_code == 0x0B


def _read_request(tid: int, unit: int, address: int, count: int) -> bytes:
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, address, count)


async def test_pipelined_requests_in_one_read_are_all_answered(sim: Simulator) -> None:
    _, port, _ = sim.endpoints["press1"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_read_request(7, 1, 5, 2) + _read_request(8, 2, 5, 2))  # one segment
        await writer.drain()
        answers = {}
        for _ in range(2):
            header = await asyncio.wait_for(reader.readexactly(7), 2.0)
            tid, _, length, unit = struct.unpack(">HHHB", header)
            body = await asyncio.wait_for(reader.readexactly(length - 1), 2.0)
            answers[tid] = (unit, body)
        assert answers[7] == (1, bytes([3, 4, 0, 1, 0, 100]))
        assert answers[8] == (2, bytes([3, 4, 0, 1, 0, 100]))
    finally:
        writer.close()


async def test_a_slow_unit_does_not_hold_up_the_others_on_its_connection(
    sim: Simulator,
) -> None:
    sim.set_fault("paint1", "slow:0.5")
    _, port, _ = sim.endpoints["press1"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_read_request(1, 3, 0, 1) + _read_request(2, 1, 0, 1))
        await writer.drain()
        order = []
        for _ in range(2):
            tid, _, length, _ = struct.unpack(
                ">HHHB", await asyncio.wait_for(reader.readexactly(7), 2.0)
            )
            await reader.readexactly(length - 1)
            order.append(tid)
        assert order == [2, 1]  # answers matched by transaction id, as Modbus TCP allows
    finally:
        writer.close()


async def test_a_port_queues_a_connect_from_every_unit_id_while_the_server_is_busy(
    sim: Simulator,
) -> None:
    """Every unit id a port can hold (247), each with its own connection, connecting at
    once while the simulator's loop is busy (here: blocked by this test) are queued by
    the kernel, not dropped: the listen backlog is larger than asyncio's default 100."""
    _, port, _ = sim.endpoints["press1"]
    with contextlib.ExitStack() as stack:
        for _ in range(250):  # blocking connects on the loop's own thread: nothing accepts
            stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5.0))
    async with AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0) as modbus:
        assert not (await modbus.read_holding_registers(0, count=2, device_id=1)).isError()


async def test_garbage_is_dropped_and_the_server_keeps_serving(sim: Simulator, client) -> None:
    _, port, _ = sim.endpoints["press1"]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
    await writer.drain()
    writer.close()
    assert not (await client.read_holding_registers(0, count=2, device_id=1)).isError()


async def test_fault_modes(sim: Simulator, client) -> None:
    _, port, _ = sim.endpoints["press1"]
    sim.set_fault("weld1", "exception")
    failed = await client.read_holding_registers(0, count=2, device_id=2)
    assert failed.isError() and failed.exception_code == 4
    sim.set_fault("paint1", "slow:0.4")
    started = time.monotonic()
    assert not (await client.read_holding_registers(0, count=2, device_id=3)).isError()
    assert time.monotonic() - started >= 0.35
    sim.set_fault("pack1", "silent")
    async with AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0) as other:
        with pytest.raises(ModbusException):
            await other.read_holding_registers(0, count=2, device_id=4)
    assert not (await client.read_holding_registers(0, count=2, device_id=1)).isError()
    assert sim.faults() == {"weld1": "exception", "paint1": "slow", "pack1": "silent"}
    for machine in ("weld1", "paint1", "pack1"):
        sim.set_fault(machine, "normal")
    assert not (await client.read_holding_registers(0, count=2, device_id=4)).isError()


async def test_rtu_over_tcp_machines_are_served_with_rtu_framing() -> None:
    data = example_on_port_data(free_port())
    weld = data["machines"]["weld1"]["connection"]
    weld.update(transport="rtu_over_tcp", port=free_port())
    plant = parse_plant(data)
    async with Simulator(plant, seed=3, behaviour=CALM) as simulator:
        _, port, unit = simulator.endpoints["weld1"]
        async with AsyncModbusTcpClient(
            "127.0.0.1", port=port, framer=FramerType.RTU, timeout=2, retries=0
        ) as rtu:
            assert not (await rtu.write_register(6, 70, device_id=unit)).isError()
            rr = await rtu.read_holding_registers(5, count=2, device_id=unit)
            assert rr.registers == [1, 70]
            over = await rtu.write_register(6, 999, device_id=unit)
            assert over.isError() and over.exception_code == 3
    assert simulator.machine_state("weld1")["speed_pct"] == 70


def test_virtual_clock_runs_speed_times_real_time() -> None:
    simulator = Simulator(example_on_port(), speed=100.0, start_s=1_000.0)
    before_real, before = time.monotonic(), simulator.now_s()
    time.sleep(0.05)
    after, after_real = simulator.now_s(), time.monotonic()
    assert before >= 1_000.0
    assert 100 * 0.05 <= after - before <= 100 * (after_real - before_real) + 1e-6
