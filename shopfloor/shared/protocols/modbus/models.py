"""Modbus in the plant file: a connection (TCP, RTU over TCP, serial RTU) and a point's
place in a device's register map (table, address, byte order)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from shopfloor.shared.enums import DataType
from shopfloor.shared.protocols.base import Connection, Model, Point, Port
from shopfloor.shared.protocols.modbus.codec import REGISTER_TYPES, register_count
from shopfloor.shared.protocols.modbus.enums import ByteOrder, Table, Transport


class Serial(Model):
    port: str
    baudrate: Annotated[int, Field(ge=300, le=921600)] = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    inter_frame_s: Annotated[float, Field(ge=0)] = 0.005


class ModbusConnection(Connection):
    """Modbus endpoint. tcp / rtu_over_tcp need host and port; rtu needs serial."""

    protocol: Literal["modbus"] = "modbus"
    transport: Transport = Transport.TCP
    host: str | None = None
    port: Port = 502
    device_id: Annotated[int, Field(ge=0, le=247)] = 1
    serial: Serial | None = None
    gateway: bool = False
    """tcp only: machines with the same host and port (a Modbus gateway, different
    device_ids) share one TCP connection instead of one each."""
    max_in_flight: Annotated[int, Field(ge=1, le=32)] = 1
    """tcp only: requests on the connection at once, matched to answers by transaction
    id (the reads of one poll go out together; behind a gateway, several machines'
    reads). 1 (default) suits devices and gateways that serve one request at a time."""

    @model_validator(mode="after")
    def _endpoint(self) -> ModbusConnection:
        if self.transport is Transport.RTU and self.serial is None:
            raise ValueError("transport rtu needs a serial section (port, baudrate, ...)")
        if self.transport is not Transport.RTU and not self.host:
            raise ValueError(f"transport {self.transport} needs host")
        if self.gateway and self.transport is not Transport.TCP:
            raise ValueError(
                f"gateway: true is for transport tcp; {self.transport} already shares its line"
            )
        if self.max_in_flight > 1 and self.transport is not Transport.TCP:
            raise ValueError(
                f"max_in_flight > 1 is for transport tcp; {self.transport} carries one "
                "request at a time"
            )
        return self

    @property
    def bus_key(self) -> str:
        """Devices sharing a bus key share one client (one request at a time on it)."""
        if self.transport is Transport.RTU:
            assert self.serial is not None
            return f"rtu:{self.serial.port}"
        return f"{self.transport}:{self.host}:{self.port}"


class ModbusPoint(Point):
    """A point in a device's register map: `count` registers (or bits) of `table` from
    `address`, multi-register values in byte order `order`."""

    protocol: Literal["modbus"] = "modbus"
    table: Table = Table.HOLDING
    address: Annotated[int, Field(ge=0, le=65535)]
    order: ByteOrder = ByteOrder.ABCD

    @model_validator(mode="after")
    def _fits_the_map(self) -> ModbusPoint:
        if self.type not in REGISTER_TYPES:
            raise ValueError(f"{self.type} is an OPC UA type; a Modbus point cannot have it")
        if self.table.is_bit and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.table} point must have type bool, not {self.type}")
        if self.type is DataType.STRING and self.length is None:
            raise ValueError("a string point needs length (characters)")
        if self.writable and not self.table.is_writable:
            raise ValueError(f"a {self.table} point cannot be writable (read-only table)")
        if self.address + self.count - 1 > 65535:
            raise ValueError(f"address {self.address} + {self.count} registers exceeds 65535")
        return self

    @property
    def count(self) -> int:
        """Registers (or bits) the point occupies."""
        return register_count(self.type, self.length)

    @property
    def end(self) -> int:
        """One past the last address occupied."""
        return self.address + self.count

    @property
    def max_chars(self) -> int | None:
        """A string fills its registers, two characters each."""
        return 2 * self.count
