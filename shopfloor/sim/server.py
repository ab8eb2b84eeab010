"""pymodbus glue: one Modbus TCP server per (host, port), each machine on it a unit id
(Modbus TCP framing, or RTU framing over TCP for `rtu_over_tcp` machines).

pymodbus 3.16.1's server answers only the first request of each network read (the rest
of the read stays unparsed until more data comes, and every answer clears the receive
buffer). `PipelinedHandler` parses every complete frame of a read and answers each, so
a client may pipeline requests to many unit ids over one connection. Requests to
healthy devices are answered synchronously from the register image (the datastore
never suspends); fault modes (silent, slow, exception) apply per unit id.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import ModbusIOException, NoSuchIdException
from pymodbus.framer import FramerSocket, FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

from shopfloor.shared.protocols.modbus.enums import Table
from shopfloor.sim import leanread
from shopfloor.sim.errors import PortInUse, Refused
from shopfloor.sim.faults import NORMAL, FaultMode
from shopfloor.sim.registers import FUNCTION_TABLE

if TYPE_CHECKING:
    from shopfloor.sim.device import SimDevice

log = logging.getLogger(__name__)

_BUFFER_BYTES = 1 << 20
"""Bytes a connection may have pending: more than one asyncio read (256 KiB), since
pymodbus drops the whole buffer beyond it (its default, 516 bytes, drops pipelined reads)."""


LISTEN_BACKLOG = 1024
"""Connections the kernel completes and queues while the server is busy (capped by
net.core.somaxconn). asyncio's default, 100, is less than the 200 devices behind one
port that an edge agent connects each on its own (`gateway: false`): when they all
reconnect at once (after timeouts, or at start), the connects beyond the queue get no
SYN-ACK and fail after the client's connect timeout, then wait for their backoff; a
busy simulator turned a few timeouts into a storm of failed connects that way."""


WriteHook = Callable[["SimDevice", Table, int, list[Any]], None]
"""Called for a client write to a device; raises Refused to refuse it."""


class PlantContext(ModbusServerContext):
    """The datastore pymodbus' PDUs call: routes a unit id to a simulated device.
    Returns an ExcCodes value (the PDU answers it as an exception response) on refusal."""

    def __init__(self, devices: dict[int, SimDevice], on_write: WriteHook) -> None:
        # No super().__init__: it wants pymodbus datastores. old_simulator=True makes
        # pymodbus use this object as the context as it is.
        self.old_simulator = True
        self.simdevices = []
        self.devices = devices
        self._on_write = on_write

    def _device(self, unit: int, func_code: int) -> tuple[SimDevice, Table]:
        device = self.devices.get(unit)
        if device is None:
            raise NoSuchIdException(f"device_id {unit} is not simulated here")
        table = FUNCTION_TABLE.get(func_code)
        if table is None:
            raise Refused(int(ExcCodes.ILLEGAL_FUNCTION), f"function {func_code}")
        return device, table

    async def async_getValues(  # noqa: N802 - pymodbus' name
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        try:
            device, table = self._device(device_id, func_code)
            return device.registers.read(table, address, count)
        except Refused as exc:
            return ExcCodes(exc.code)

    async def async_setValues(  # noqa: N802 - pymodbus' name
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        try:
            device, table = self._device(device_id, func_code)
            self._on_write(device, table, address, list(values))
        except Refused as exc:
            log.info("unit %d refused a write: %s", device_id, exc)
            return ExcCodes(exc.code)
        return None

    def device_ids(self) -> list[int]:
        return list(self.devices)


class PipelinedHandler(ServerRequestHandler):
    """One client connection: answers every request of every read. A healthy read over
    Modbus TCP is answered by `leanread` (the answers of one network read leave in one
    write); everything else by pymodbus, in request order."""

    def __init__(self, owner: PlantServer) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)
        self.max_buffer_size = _BUFFER_BYTES
        self._mbap = isinstance(self.framer, FramerSocket)  # else RTU framing over TCP
        self._lean = self._mbap and owner.lean
        self.context: PlantContext = owner.context  # type: ignore[assignment]
        self._later: set[asyncio.Task[None]] = set()
        self._answers: list[bytes] = []  # lean answers not yet written

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        used = 0
        devices = self.context.devices
        while len(data) - used >= self.framer.MIN_SIZE:
            if self._mbap and data[used + 2 : used + 4] != b"\x00\x00":
                log.debug("dropping %d bytes that are not Modbus TCP", len(data) - used)
                used = len(data)
                break
            if self._lean and len(data) - used >= leanread.REQUEST_SIZE:
                frame = leanread.answer(devices, data, used)
                if frame is not None:
                    self._answers.append(frame)
                    used += leanread.REQUEST_SIZE
                    continue
            size = self._pymodbus_frame(data, used)
            if not size:
                break
            used += size
        self.send(b"")
        return used

    def _pymodbus_frame(self, data: bytes, at: int) -> int:
        """Parse and answer one frame at `at` with pymodbus; its size (0: incomplete;
        the rest of `data` when it cannot be parsed)."""
        try:
            size, pdu = self.framer.handleFrame(data[at:], 0, 0)
        except ModbusIOException as exc:
            self._send_exception(
                exc.fcode or 0,
                ExcCodes.ILLEGAL_FUNCTION,
                exc.dev_id or 0,
                exc.transaction_id or 0,
            )
            return len(data) - at
        if size and pdu is not None:
            self._dispatch(pdu)
        return size

    def send(self, data: bytes, addr: tuple[Any, ...] | None = None) -> None:
        """Write an answer, after the lean answers before it, without dropping requests
        still buffered (pymodbus does)."""
        if self._answers:
            self._answers.append(data)
            data = b"".join(self._answers)
            self._answers.clear()
        if data and self.transport:
            self.transport.write(data)  # type: ignore[attr-defined]

    def callback_disconnected(self, exc: Exception | None) -> None:
        for task in self._later:
            task.cancel()
        super().callback_disconnected(exc)

    def _dispatch(self, pdu: ModbusPDU) -> None:
        device = self.context.devices.get(pdu.dev_id)
        fault = device.fault if device is not None else NORMAL
        if fault.mode is FaultMode.SILENT:
            return
        if fault.mode is FaultMode.EXCEPTION:
            self._send_exception(
                pdu.function_code, ExcCodes.DEVICE_FAILURE, pdu.dev_id, pdu.transaction_id
            )
        elif fault.mode is FaultMode.SLOW:
            task = asyncio.get_running_loop().create_task(self._answer_later(pdu, fault.delay_s))
            self._later.add(task)
            task.add_done_callback(self._later.discard)
        else:
            self._answer(pdu)

    async def _answer_later(self, pdu: ModbusPDU, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._answer(pdu)

    def _answer(self, pdu: ModbusPDU) -> None:
        try:
            response = _run_now(pdu.datastore_update(self.context, pdu.dev_id))
        except NoSuchIdException:
            response = ExceptionResponse(pdu.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
        except Exception:  # a bug must cost one answer, never the connection
            log.exception("request %s failed", pdu)
            response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        self.pdu_send(response)

    def _send_exception(self, function_code: int, code: ExcCodes, unit: int, tid: int) -> None:
        self.pdu_send(ExceptionResponse(function_code, code, device_id=unit, transaction=tid))


def _run_now(coro: Any) -> ModbusPDU:
    """Run a coroutine that never suspends (our datastore) to its result, without a task."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("the datastore suspended; it must answer synchronously")


class PlantServer(ModbusTcpServer):
    """A Modbus TCP server on one port, hosting every simulated unit id on it."""

    def __init__(
        self,
        devices: dict[int, SimDevice],
        on_write: WriteHook,
        host: str,
        port: int,
        framer: FramerType = FramerType.SOCKET,
        lean: bool = True,
    ) -> None:
        context = PlantContext(devices, on_write)
        super().__init__(context, framer=framer, address=(host, port))
        self.host = host
        self.port = port
        self.lean = lean
        """Healthy reads over Modbus TCP answered by `leanread` (False: all by pymodbus;
        the tests compare the two)."""

    def callback_new_connection(self) -> PipelinedHandler:
        return PipelinedHandler(self)

    async def listen(self) -> bool:
        """Listen, raising PortInUse with the OS' reason (pymodbus only logs it)."""
        self.is_closing = False
        self.is_listener = True
        try:
            # call_create: pymodbus' functools.partial of loop.create_server
            transport = await self.call_create(backlog=LISTEN_BACKLOG)  # type: ignore[call-arg]
        except OSError as exc:
            raise PortInUse(self.host, self.port, _reason(exc)) from exc
        self.transport = transport[0] if isinstance(transport, tuple) else transport
        return True


def _reason(exc: OSError) -> str:
    """'Address already in use' rather than asyncio's long wrapper text."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)
