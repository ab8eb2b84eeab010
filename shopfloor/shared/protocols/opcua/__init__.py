"""OPC UA in the plant file: its models and checks. The edge's driver for it is
`shopfloor.edge.drivers.opcua`; the simulator serves it (`shopfloor.sim.opcua_server`)."""

from __future__ import annotations

from shopfloor.shared.protocols.base import ProtocolModels
from shopfloor.shared.protocols.opcua.checks import machine_checks, plant_checks
from shopfloor.shared.protocols.opcua.models import (
    VARIANT_OF,
    DeadbandKind,
    OpcUaConnection,
    OpcUaPoint,
    ReadMode,
    SecurityMode,
    SecurityPolicy,
    browse_steps,
)

MODELS = ProtocolModels("opcua", OpcUaConnection, OpcUaPoint, machine_checks, plant_checks)

__all__ = ["MODELS", "VARIANT_OF", "DeadbandKind", "OpcUaConnection", "OpcUaPoint", "ReadMode",
           "SecurityMode", "SecurityPolicy", "browse_steps"]
