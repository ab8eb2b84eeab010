"""The poll path's Modbus TCP reads: a lean client for function codes 1-4 only.

Requests carry a transaction id and are matched to their answers by it, so several may
be on the wire at once (`max_in_flight`): machines behind one gateway port (different
unit ids, one TCP connection) are polled without waiting for each other, and a silent
unit id costs only its own request's timeout and one in-flight slot. An answer nobody
waits for (late, after its timeout) is dropped by its transaction id.

Why not pymodbus' client here: per read it builds a request PDU object, a framer pass,
a transaction record and a response PDU with a list of ints, under a lock that allows one
request per client at a time; at 1,000 machines x 4 reads a second that was ~14 % of the
agent's own time in sends plus the decoding of the int lists (docs/edge.md#performance).
This client sends one pre-packed header and hands back the answer's bytes, which the
block decoder unpacks in one call. Writes, serial lines and RTU over TCP stay on pymodbus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import struct
from collections import deque
from collections.abc import Sequence

from shopfloor.edge.errors import DeviceError
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.enums import DeviceFailure
from shopfloor.shared.protocols.modbus.enums import Table

log = logging.getLogger(__name__)

FUNCTION = {
    Table.COIL: 1,
    Table.DISCRETE_INPUT: 2,
    Table.HOLDING: 3,
    Table.INPUT: 4,
}
Request = tuple[Table, int, int]
"""(table, address, count) of one read."""
_REQUEST = struct.Struct(">HHHBBHH")  # MBAP (tid, protocol 0, length 6, unit) + PDU
_MAX_FRAME = 260  # MBAP 7 + PDU 253: anything longer is not Modbus TCP


class _Exchange:
    """The requests of one device sent together, and their answers: one future for all
    of them (set when the last answer is in, or failed by the deadline or a lost
    connection), not one per request."""

    __slots__ = ("answers", "done", "left")

    def __init__(self, size: int, done: asyncio.Future[None]) -> None:
        self.answers: list[bytes | None] = [None] * size
        self.left = size
        self.done = done

    def answer(self, index: int, frame: bytes) -> None:
        self.answers[index] = frame
        self.left -= 1
        if not self.left and not self.done.done():
            self.done.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class _Link(asyncio.Protocol):
    """One TCP connection; routes each answer frame to the request with its tid."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, tuple[_Exchange, int]] = {}
        self.lost = False
        self._buffer = b""
        self._outgoing: list[bytes] = []

    def write(self, frames: list[bytes]) -> None:
        """Queue request frames; they go out in one send at the end of this pass of the
        event loop, together with what other devices behind the same gateway queue in
        it (a loopback send costs tens of microseconds: fewer is cheaper)."""
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.extend(frames)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if self.transport is not None and not self.lost and frames:
            self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # one small request at a time: no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        while len(buffer) >= 6:
            size = 6 + (buffer[4] << 8 | buffer[5])
            if size > _MAX_FRAME or buffer[2:4] != b"\x00\x00":
                self._garbage(len(buffer))
                return
            if len(buffer) < size:
                break
            waiting = self.pending.pop(buffer[0] << 8 | buffer[1], None)
            if waiting is not None:
                waiting[0].answer(waiting[1], buffer[6:size])  # unit id + PDU
            buffer = buffer[size:]
        self._buffer = buffer

    def _garbage(self, size: int) -> None:
        """Not Modbus TCP: the stream cannot be resynchronised; drop the connection."""
        log.debug("dropping a connection that sent %d bytes of non-Modbus data", size)
        self._buffer = b""
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        why = ConnectionError(str(exc) if exc else "connection closed by the device")
        for exchange, _ in self.pending.values():
            exchange.fail(why)
        self.pending.clear()


class _Deadlines:
    """Request timeouts, one timer per `TICK_S` for every request due to expire in it
    (rounded up: a request times out at most one tick late) instead of a timer per
    exchange: at 1,000 polls a second that was a timer created, pushed on the event
    loop's heap and cancelled for every poll."""

    TICK_S = 0.01

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[int, list[_Exchange]] = {}

    def add(self, timeout_s: float, exchange: _Exchange) -> None:
        """Fail the exchange with TimeoutError if it is not complete `timeout_s` from now."""
        loop = self._loop
        tick = math.ceil((loop.time() + timeout_s) / self.TICK_S)
        due = self._due.get(tick)
        if due is None:
            due = self._due[tick] = []
            loop.call_at(tick * self.TICK_S, self._expire, tick)
        due.append(exchange)

    def _expire(self, tick: int) -> None:
        for exchange in self._due.pop(tick, ()):
            exchange.fail(TimeoutError())


class _Slots:
    """`size` in-flight slots; `acquire(n)` takes n at once (first come, first served), so
    two pollers each holding part of what they need can never wait for each other."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, n: int) -> None:
        if not self._waiting and self._free >= n:
            self._free -= n
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((n, waiter))
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(n)  # granted, then cancelled: give the slots back
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove((n, waiter))
                self._wake()
            raise

    def release(self, n: int) -> None:
        self._free += n
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self._free >= self._waiting[0][0]:
            n, waiter = self._waiting.popleft()
            if waiter.done():  # cancelled while it waited
                continue
            self._free -= n
            waiter.set_result(None)


class TcpReader:
    """Reads from one Modbus TCP endpoint over one connection (reconnected with a capped,
    jittered backoff). `shared`: several devices use it (a gateway), so a timeout
    leaves the connection open; a device of its own is disconnected after a timeout."""

    def __init__(
        self, host: str, port: int, max_in_flight: int, backoff_max_s: float, shared: bool = False
    ) -> None:
        self.host = host
        self.port = port
        self.shared = shared
        self._slots = _Slots(max_in_flight)
        # Behind a gateway one device may hold at most half of the slots (at least 1), so
        # a silent unit id never takes the whole connection while it times out.
        self._per_device = max(1, max_in_flight // 2) if shared else max_in_flight
        self._connecting = asyncio.Lock()
        self._link: _Link | None = None
        self._tid = 0
        self._backoff = Backoff(min(1.0, backoff_max_s), backoff_max_s)
        self._retry_at = 0.0
        self._loop = asyncio.get_running_loop()
        self._deadlines = _Deadlines(self._loop)

    async def read(
        self, machine: str, unit: int, table: Table, address: int, count: int, timeout_s: float
    ) -> bytes:
        """The data bytes of one read answer (registers big-endian, or bits packed LSB
        first), waiting at most `timeout_s` for it once sent. Raises DeviceError
        (connect / timeout / exception / io)."""
        (outcome,) = await self.read_many(machine, unit, [(table, address, count)], timeout_s)
        if isinstance(outcome, DeviceError):
            raise outcome
        assert outcome is not None
        return outcome

    async def read_many(
        self, machine: str, unit: int, requests: Sequence[Request], timeout_s: float
    ) -> list[bytes | DeviceError | None]:
        """Several reads of one device, up to `max_in_flight` (behind a gateway: half of it)
        sent together and awaited together: one outcome per request, the answer's data
        bytes or the DeviceError of that read. After a connect failure or a timeout the requests not
        yet sent are not tried (None): the device is not there."""
        outcomes: list[bytes | DeviceError | None] = [None] * len(requests)
        step = self._per_device
        if len(requests) <= step:  # the usual case: one exchange
            try:
                return await self._exchange(machine, unit, requests, timeout_s)
            except DeviceError as exc:  # could not connect
                outcomes[0] = exc
                return outcomes
        for start in range(0, len(requests), step):
            chunk = requests[start : start + step]
            try:
                done = await self._exchange(machine, unit, chunk, timeout_s)
            except DeviceError as exc:  # could not connect
                outcomes[start] = exc
                break
            outcomes[start : start + len(done)] = done
            if _timed_out(done):
                break
        return outcomes

    async def _exchange(
        self, machine: str, unit: int, chunk: Sequence[Request], timeout_s: float
    ) -> list[bytes | DeviceError | None]:
        await self._slots.acquire(len(chunk))
        try:
            link = self._link
            if link is None or link.lost:
                link = await self._connect(machine, timeout_s)
            exchange = _Exchange(len(chunk), self._loop.create_future())
            tids = self._send(link, unit, chunk, exchange)
            self._deadlines.add(timeout_s, exchange)
            failure: Exception | None = None
            try:
                await exchange.done
            except (TimeoutError, ConnectionError) as exc:
                failure = exc
            finally:
                for tid in tids:
                    link.pending.pop(tid, None)
            outcomes: list[bytes | DeviceError | None] = [
                self._outcome(machine, unit, request, answer, failure, timeout_s)
                for request, answer in zip(chunk, exchange.answers, strict=True)
            ]
            if not self.shared and isinstance(failure, TimeoutError):
                self._drop(link)  # a late answer must not be taken for the next request's
            return outcomes
        finally:
            self._slots.release(len(chunk))

    def _send(self, link: _Link, unit: int, chunk: Sequence[Request],
              exchange: _Exchange) -> list[int]:
        """Write every request of the chunk in one send; their tids."""
        tids = []
        frames = []
        pending = link.pending
        for index, (table, address, count) in enumerate(chunk):
            tid = self._next_tid(link)
            pending[tid] = (exchange, index)
            tids.append(tid)
            frames.append(_REQUEST.pack(tid, 0, 6, unit, FUNCTION[table], address, count))
        link.write(frames)
        return tids

    def _outcome(
        self,
        machine: str,
        unit: int,
        request: Request,
        answer: bytes | None,
        failure: Exception | None,
        timeout_s: float,
    ) -> bytes | DeviceError:
        table, address, count = request
        if answer is None:
            if isinstance(failure, ConnectionError):
                return DeviceError(machine, DeviceFailure.TIMEOUT, f"{self._where()}: {failure}")
            return DeviceError(machine, DeviceFailure.TIMEOUT,
                               f"no answer within {timeout_s:g} s "
                               f"from {self._where()} unit {unit}")
        fc = FUNCTION[table]
        expected = (count + 7) // 8 if table.is_bit else 2 * count
        if answer[0] != unit:
            return DeviceError(machine, DeviceFailure.IO,
                               f"answer from unit {answer[0]} to a request for unit {unit}")
        if answer[1] == fc and len(answer) == 3 + expected and answer[2] == expected:
            return answer[3:]
        if answer[1] == fc | 0x80 and len(answer) == 3:
            return DeviceError(machine, DeviceFailure.EXCEPTION,
                               f"exception code {answer[2]} for function {fc} {address}")
        return DeviceError(
            machine, DeviceFailure.IO,
            f"malformed answer to function {fc} {address} x {count}: {answer.hex()}",
        )

    def _next_tid(self, link: _Link) -> int:
        tid = (self._tid + 1) & 0xFFFF
        while tid in link.pending:
            tid = (tid + 1) & 0xFFFF
        self._tid = tid
        return tid

    async def _connect(self, machine: str, timeout_s: float) -> _Link:
        async with self._connecting:  # devices behind one gateway wait for one connect
            link = self._link
            if link is not None and not link.lost:
                return link
            loop = asyncio.get_running_loop()
            if loop.time() < self._retry_at:
                raise DeviceError(machine, DeviceFailure.CONNECT,
                                  f"{self._where()}: waiting to reconnect")
            try:
                async with asyncio.timeout(timeout_s + 0.5):
                    _, link = await loop.create_connection(_Link, self.host, self.port)
            except (TimeoutError, OSError) as exc:
                self._retry_at = loop.time() + self._backoff.next_delay()
                why = str(exc) or type(exc).__name__
                raise DeviceError(machine, DeviceFailure.CONNECT,
                                  f"{self._where()}: {why}") from exc
            self._backoff.reset()
            self._link = link
            return link

    def _drop(self, link: _Link) -> None:
        if link.transport is not None:
            link.transport.close()
        link.lost = True  # the next read reconnects at once
        if self._link is link:
            self._link = None

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        if self._link is not None:
            self._drop(self._link)


def _timed_out(outcomes: Sequence[bytes | DeviceError | None]) -> bool:
    """True when one of the outcomes is a timeout (the device is not there)."""
    return any(isinstance(o, DeviceError) and o.kind is DeviceFailure.TIMEOUT for o in outcomes)
