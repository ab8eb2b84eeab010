"""The Modbus driver (TCP, TCP gateways, RTU over TCP, serial RTU): `driver.py` (the
`Driver`), `bus.py` (one connection: pymodbus client, lock, backoff), `tcpread.py` (the
lean pipelining TCP reader of the poll path), `plan.py` (coalescing points into read
blocks), `blockcodec.py` (a block's answer decoded in one unpack), `history.py` (a
simulated plant's past read like a bus). Its plant-file models are
`shopfloor.shared.protocols.modbus`."""

from __future__ import annotations

from shopfloor.edge.drivers.modbus.driver import ModbusDriver, drivers

FACTORY = drivers

__all__ = ["FACTORY", "ModbusDriver"]
