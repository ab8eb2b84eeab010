"""Modbus transports: one `Bus` per client connection. TCP: one connection per
machine, or one per gateway host:port shared by the machines behind it (`gateway:
true`); polls read through the lean, pipelining `TcpReader`, writes through pymodbus.
A serial line or a serial gateway (RTU over TCP) is shared by its devices, one request
at a time under a lock, with the line's inter-frame pause after each request.
Reconnects follow a capped, jittered backoff per bus.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from shopfloor.edge.drivers.base import finish_later
from shopfloor.edge.drivers.modbus.plan import ReadBlock
from shopfloor.edge.drivers.modbus.tcpread import Outcome, TcpReader
from shopfloor.edge.errors import DeviceError, DeviceRefusedWrite
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.enums import DeviceFailure
from shopfloor.shared.protocols.modbus import ModbusConnection
from shopfloor.shared.protocols.modbus.enums import Table, Transport

log = logging.getLogger(__name__)

def to_wire(block: ReadBlock, data: Sequence[int | bool]) -> bytes:
    """Registers or bits as Modbus carries them (big-endian registers, bits packed LSB
    first): what `ReadBlock.decoder` decodes."""
    if block.table.is_bit:
        word = sum(1 << i for i, bit in enumerate(data) if bit)
        return word.to_bytes((block.count + 7) // 8, "little")
    return struct.pack(f">{len(data)}H", *data)


_READ = {
    Table.COIL: "read_coils",
    Table.DISCRETE_INPUT: "read_discrete_inputs",
    Table.HOLDING: "read_holding_registers",
    Table.INPUT: "read_input_registers",
}


def bus_key(machine_id: str, connection: ModbusConnection) -> str:
    """Machines with the same key share one client: plain TCP gets one per machine (a
    slow device never delays another) unless it is behind a gateway; a serial line or a
    serial gateway is shared."""
    if connection.transport is Transport.TCP and not connection.gateway:
        return f"tcp:{machine_id}"
    return connection.bus_key


def make_client(connection: ModbusConnection) -> Any:
    """A pymodbus client that neither retries nor reconnects by itself (we do both)."""
    common: dict[str, Any] = {"timeout": connection.timeout_s, "retries": 0, "reconnect_delay": 0}
    if connection.transport is Transport.RTU:
        serial = connection.serial
        assert serial is not None
        return AsyncModbusSerialClient(
            serial.port,
            framer=FramerType.RTU,
            baudrate=serial.baudrate,
            bytesize=serial.bytesize,
            parity=serial.parity,
            stopbits=serial.stopbits,
            **common,
        )
    framer = FramerType.RTU if connection.transport is Transport.RTU_OVER_TCP else FramerType.SOCKET
    assert connection.host is not None
    return AsyncModbusTcpClient(connection.host, port=connection.port, framer=framer, **common)


class Bus:
    """One Modbus client connection and the lock that serialises its requests; for TCP
    also the `TcpReader` that polls read through (pymodbus then only writes)."""

    def __init__(self, key: str, connection: ModbusConnection, backoff_max_s: float) -> None:
        self.key = key
        self.connection = connection
        self.client = make_client(connection)
        self.reader: TcpReader | None = None
        if connection.transport is Transport.TCP:
            assert connection.host is not None
            self.reader = TcpReader(
                connection.host,
                connection.port,
                connection.max_in_flight,
                backoff_max_s,
                shared=connection.gateway,
            )
        self.lock = asyncio.Lock()
        serial = connection.serial
        self.pause_s = (
            serial.inter_frame_s if connection.transport is Transport.RTU and serial else 0.0
        )
        self._backoff = Backoff(min(1.0, backoff_max_s), backoff_max_s)
        self._retry_at = 0.0

    async def read_block(
        self, machine: str, device_id: int, block: ReadBlock, timeout_s: float | None = None
    ) -> bytes:
        """One block's answer as Modbus carries it (registers big-endian, bits packed LSB
        first), for `block.decoder`. Raises DeviceError."""
        timeout = self.connection.timeout_s if timeout_s is None else timeout_s
        if self.reader is not None:
            return await self.reader.read(machine, device_id, block.request, timeout)
        return to_wire(block, await self._read_pymodbus(machine, device_id, block))

    def start_read_blocks(self, machine: str, device_id: int, blocks: Sequence[ReadBlock],
                          timeout_s: float, finished: Callable[[list[Outcome] | Exception], None]
                          ) -> None:
        """Read every block of one poll; `finished(outcomes)` later, on the event loop
        thread: per block its answer's bytes (see `read_block`) or its DeviceError. On TCP
        this is the callback-driven `TcpReader` (up to `max_in_flight` requests in one
        send); elsewhere a task reads the blocks one at a time. After a connect failure or
        a timeout the blocks not yet tried stay None (the device is not there); after an
        exception answer the others are still read."""
        if self.reader is not None:
            requests = [b.request for b in blocks]
            self.reader.start_many(machine, device_id, requests, timeout_s, finished)
        else:
            finish_later(self._read_serially(machine, device_id, blocks, timeout_s), finished)

    async def read_blocks(
        self, machine: str, device_id: int, blocks: Sequence[ReadBlock], timeout_s: float
    ) -> list[Outcome]:
        """`start_read_blocks`, awaited."""
        if self.reader is not None:
            requests = [b.request for b in blocks]
            return await self.reader.read_many(machine, device_id, requests, timeout_s)
        return await self._read_serially(machine, device_id, blocks, timeout_s)

    async def _read_serially(self, machine: str, device_id: int, blocks: Sequence[ReadBlock],
                             timeout_s: float) -> list[Outcome]:
        outcomes: list[Outcome] = [None] * len(blocks)
        for i, block in enumerate(blocks):
            try:
                outcomes[i] = await self.read_block(machine, device_id, block, timeout_s)
            except DeviceError as exc:
                outcomes[i] = exc
                if exc.kind is not DeviceFailure.EXCEPTION:
                    break
        return outcomes

    async def read(self, machine: str, device_id: int, block: ReadBlock) -> list[int] | list[bool]:
        """Registers (or bits) of one block. Raises DeviceError."""
        if self.reader is None:
            return await self._read_pymodbus(machine, device_id, block)
        raw = await self.read_block(machine, device_id, block)
        if block.table.is_bit:
            word = int.from_bytes(raw, "little")
            return [bool(word >> i & 1) for i in range(block.count)]
        return list(struct.unpack(f">{len(raw) // 2}H", raw))

    async def _read_pymodbus(
        self, machine: str, device_id: int, block: ReadBlock
    ) -> list[int] | list[bool]:
        method = getattr(self.client, _READ[block.table])
        response = await self._request(
            machine, method, block.address, count=block.count, device_id=device_id
        )
        if block.table.is_bit:
            return list(response.bits[: block.count])
        return list(response.registers)

    async def write(
        self, machine: str, device_id: int, table: Table, address: int, values: Sequence[int]
    ) -> None:
        """Write a coil (write_coil) or holding registers (write_registers). An
        exception answer saying the device will not take it (illegal function, address
        or data value) raises DeviceRefusedWrite; others (device failure, busy) raise
        DeviceError."""
        try:
            if table is Table.COIL:
                await self._request(
                    machine, self.client.write_coil, address, bool(values[0]), device_id=device_id
                )
            else:
                await self._request(
                    machine, self.client.write_registers, address, list(values),
                    device_id=device_id,
                )
        except _Refused as exc:
            raise DeviceRefusedWrite(machine, DeviceFailure.EXCEPTION, exc.detail) from None

    async def _request(self, machine: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        async with self.lock:
            await self._ensure_connected(machine)
            try:  # pymodbus bounds the wait for the answer by timeout_s (no retries)
                response = await method(*args, **kwargs)
            except (ModbusException, TimeoutError, OSError) as exc:
                self._after_io_error(exc)
                raise DeviceError(machine, DeviceFailure.TIMEOUT, _describe(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - garbage from a device must not kill polling
                self._after_io_error(exc)
                raise DeviceError(machine, DeviceFailure.IO,
                                  f"{type(exc).__name__}: {exc}") from exc
            finally:
                if self.pause_s:
                    await asyncio.sleep(self.pause_s)
        if response.isError():
            code = getattr(response, "exception_code", "?")
            error = _Refused if code in REFUSALS else DeviceError
            raise error(
                machine, DeviceFailure.EXCEPTION,
                f"exception code {code} for {method.__name__} {args[0]}",
            )
        return response

    async def _ensure_connected(self, machine: str) -> None:
        if self.client.connected:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            raise DeviceError(machine, DeviceFailure.CONNECT,
                              f"{self._where()}: waiting to reconnect")
        try:
            async with asyncio.timeout(self.connection.timeout_s + 0.5):
                ok = await self.client.connect()
        except (ModbusException, TimeoutError, OSError) as exc:
            ok, why = False, _describe(exc)
        else:
            why = "connection refused or timed out"
        if not ok:
            self.client.close()
            self._retry_at = loop.time() + self._backoff.next_delay()
            raise DeviceError(machine, DeviceFailure.CONNECT, f"{self._where()}: {why}")
        self._backoff.reset()

    def _after_io_error(self, exc: BaseException) -> None:
        """A silent device on TCP: drop the connection so that a late answer cannot be
        taken for the next request's. A shared serial line or gateway stays open."""
        if self.connection.transport is Transport.TCP or not self.client.connected:
            self.client.close()

    def _where(self) -> str:
        if self.connection.transport is Transport.RTU and self.connection.serial:
            return self.connection.serial.port
        return f"{self.connection.host}:{self.connection.port}"

    def close(self) -> None:
        self.client.close()
        if self.reader is not None:
            self.reader.close()


REFUSALS = frozenset({1, 2, 3})
"""Exception codes by which a device says no (illegal function, data address, data
value): a write answered so was refused, not failed."""


class _Refused(DeviceError):
    """An exception answer with a code of REFUSALS (still a DeviceError to a read)."""


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
