"""Which machines of a plant the simulator serves (the live simulator and its history
must agree: the machines of a line are coupled)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shopfloor.shared.plant import Plant
from shopfloor.shared.protocols.modbus import ModbusConnection
from shopfloor.shared.protocols.modbus.enums import Transport
from shopfloor.shared.protocols.opcua import OpcUaConnection
from shopfloor.sim.errors import SimError

log = logging.getLogger(__name__)

SIMULATED_TRANSPORTS = frozenset({Transport.TCP, Transport.RTU_OVER_TCP})


def served_ids(plant: Plant, machines: Iterable[str] | None) -> list[str]:
    """The machines to simulate, in plant order: OPC UA, Modbus TCP and RTU-over-TCP ones
    (serial RTU machines are not served)."""
    wanted = list(plant.machines) if machines is None else list(machines)
    unknown = [m for m in wanted if m not in plant.machines]
    if unknown:
        raise SimError(f"unknown machine(s) {unknown} (plant has {sorted(plant.machines)})")
    served = [m for m in wanted if _simulated(plant.machines[m].connection)]
    for mid in set(wanted) - set(served):
        conn = plant.machines[mid].connection
        log.warning(
            "%s: %s %s is not simulated (only modbus tcp and rtu_over_tcp)",
            mid,
            conn.protocol,
            getattr(conn, "transport", ""),
        )
    return served


def _simulated(connection: object) -> bool:
    return isinstance(connection, OpcUaConnection) or (
        isinstance(connection, ModbusConnection) and connection.transport in SIMULATED_TRANSPORTS)
