"""The OPC UA driver (asyncua): `driver.py` (the `Driver`: one session per machine,
subscription or polling, reconnects), `session.py` (security, trust list, user, node
resolution and type check, Read, Write, subscription), `convert.py` (DataValue -> value,
status -> quality, source timestamp -> event time; pure), `history.py` (a simulated
plant's past read like a server). Its plant-file models are
`shopfloor.shared.protocols.opcua`."""

from __future__ import annotations

from shopfloor.edge.drivers.opcua.driver import OpcUaDriver, drivers

FACTORY = drivers

__all__ = ["FACTORY", "OpcUaDriver"]
