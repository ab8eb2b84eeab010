"""The Modbus driver's answer to a write the device refuses: an exception answer of
illegal address / value is a refusal (command `rejected`, the code in its detail), not a
failure; a read of the same register stays a failed read. Real pymodbus server."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest

from shopfloor.edge.commands import execute
from shopfloor.edge.drivers import build_drivers
from shopfloor.edge.errors import DeviceError, DeviceRefusedWrite
from shopfloor.shared.contract import Command, CommandStatus
from shopfloor.shared.enums import ControlAction
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant, Role
from tests.edge.conftest import POINTS, ModbusServer, machine_spec, plant_data

BEYOND = 250  # the test server maps 200 holding registers


@pytest.fixture
def plant_and_server() -> Iterator[Plant]:
    server = ModbusServer((1,)).start()
    spec = machine_spec(server.port, 1)
    spec["connection"]["timeout_s"] = 5.0
    spec["points"] = [*POINTS, {"name": "ghost", "table": "holding", "address": BEYOND,
                                "type": "uint16", "writable": True}]
    try:
        yield parse_plant(plant_data("refusals", 1883, {"m1": spec}, "state"))
    finally:
        server.stop()


def test_a_write_the_device_refuses_is_rejected(plant_and_server: Plant) -> None:
    plant = plant_and_server
    machine = plant.machines["m1"]
    ghost = machine.point("ghost")
    assert ghost is not None

    async def main() -> None:
        (driver,) = build_drivers(plant.machines, plant.agents[0])
        try:
            with pytest.raises(DeviceRefusedWrite, match="exception code 2"):
                await driver.write("m1", ghost, 7)
            with pytest.raises(DeviceError) as read:
                await driver.read_point("m1", ghost)
            assert not isinstance(read.value, DeviceRefusedWrite)
            command = Command(id="c1", control_action=ControlAction.SETPOINT, point="ghost",
                              value=7,
                              expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1),
                              role=Role.OPERATOR)
            status, detail, readback = await execute("m1", machine, driver, command)
            assert (status, readback) == (CommandStatus.REJECTED, None)
            assert detail.startswith("modbus: exception code 2")
        finally:
            driver.close()

    asyncio.run(main())
