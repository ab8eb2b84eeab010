"""OPC UA for the driver conformance tests: two real asyncua servers (one per machine),
the machines in polling mode (the conformance tests use the polled interface; the
subscription mode is tested end to end in test_agent.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shopfloor.shared.contract import PointValue
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Point
from tests.edge.conftest import plant_data
from tests.edge.drivers.rig import Rig
from tests.harness.opcua import OpcuaServer

POINTS: list[dict[str, Any]] = [
    {"name": "flag", "node_id": "ns=2;s=flag", "type": "bool", "writable": True},
    {"name": "i16", "node_id": "ns=2;s=i16", "type": "int16", "writable": True, "min": -50,
     "max": 50},
    {"name": "u32", "browse_path": "2:Machine/2:u32", "type": "uint32", "writable": True},
    {"name": "i64", "node_id": "ns=2;s=i64", "type": "int64"},
    {"name": "f32", "node_id": "ns=2;s=f32", "type": "float32", "writable": True, "min": 0,
     "max": 100},
    {"name": "f64", "node_id": "ns=2;s=f64", "type": "float64", "scale": 0.01},
    {"name": "text", "node_id": "ns=2;s=text", "type": "string", "writable": True},
]


def opcua_rig() -> Iterator[Rig]:
    servers = {"m1": OpcuaServer().start(), "m2": OpcuaServer().start()}
    machines = {
        mid: {"line": "line1", "poll_interval_s": 0.5, "points": POINTS,
              "connection": {"protocol": "opcua", "endpoint": server.endpoint,
                             "mode": "polling", "timeout_s": 5.0}}
        for mid, server in servers.items()
    }
    plant = parse_plant(plant_data("conformance", 1883, machines, "state"))

    def serve(machine_id: str, point: Point, value: PointValue) -> None:
        raw: Any = value
        if isinstance(value, int | float) and not isinstance(value, bool):
            raw = point.raw_of(value)
            raw = float(raw) if point.type.is_float else int(raw)
        servers[machine_id].set(point.name, raw)

    def stop() -> None:
        for server in servers.values():
            server.stop()

    try:
        yield Rig(plant, serve, stop)
    finally:
        stop()


RIG = opcua_rig
