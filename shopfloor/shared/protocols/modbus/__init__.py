"""Modbus (TCP, RTU over TCP, serial RTU) in the plant file: its models and checks.
The edge's driver for it is `shopfloor.edge.drivers.modbus`."""

from __future__ import annotations

from shopfloor.shared.protocols.base import ProtocolModels
from shopfloor.shared.protocols.modbus.checks import machine_checks, plant_checks
from shopfloor.shared.protocols.modbus.models import ModbusConnection, ModbusPoint, Serial

MODELS = ProtocolModels("modbus", ModbusConnection, ModbusPoint, machine_checks, plant_checks)

__all__ = ["MODELS", "ModbusConnection", "ModbusPoint", "Serial"]
