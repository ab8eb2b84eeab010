"""Modbus for the driver conformance tests: a real pymodbus TCP server, two unit ids
behind one gateway connection."""

from __future__ import annotations

from collections.abc import Iterator

from shopfloor.shared.contract import PointValue
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Point
from shopfloor.shared.protocols.modbus import ModbusPoint
from shopfloor.shared.protocols.modbus.codec import encode
from tests.edge.conftest import ModbusServer, machine_spec, plant_data
from tests.edge.drivers.rig import Rig


def modbus_rig() -> Iterator[Rig]:
    server = ModbusServer((1, 2)).start()
    machines = {"m1": machine_spec(server.port, 1), "m2": machine_spec(server.port, 2)}
    for spec in machines.values():  # a loaded machine must not time a read out
        spec["connection"].update(gateway=True, timeout_s=5.0)
    plant = parse_plant(plant_data("conformance", 1883, machines, "state"))

    def serve(machine_id: str, point: Point, value: PointValue) -> None:
        assert isinstance(point, ModbusPoint)
        device = plant.machines[machine_id].connection.device_id  # type: ignore[attr-defined]
        server.set(device, str(point.table), point.address, encode(point, value))

    try:
        yield Rig(plant, serve, server.stop)
    finally:
        server.stop()


RIG = modbus_rig
