"""The lean read path (`sim/leanread.py`) against pymodbus' own path, over real Modbus TCP:
the same request bytes sent to a server answering with each give the same answer bytes,
for every read function, in-range and out-of-range addresses and counts, unknown unit
ids, units in fault modes, other function codes and malformed lengths mixed in; and
pymodbus' client reads the lean answers."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from shopfloor.sim.faults import Fault, FaultMode
from shopfloor.sim.server import PlantServer
from shopfloor.sim.simulator import Simulator
from tests.harness.services import free_port
from tests.sim.conftest import CALM, example_on_port

Servers = tuple[int, int]  # (lean port, pymodbus-only port)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """Two servers over the same devices (the example plant's units 1..4; unit 3 answers
    every request with an exception), one lean, one pymodbus only, on an event loop of
    their own thread. Nothing ticks and writes are not applied: the image holds still."""
    sim = Simulator(example_on_port(), seed=5, behaviour=CALM)
    units = {unit: sim.devices[m] for m, (_, _, unit) in sim.endpoints.items() if unit}
    units[3].fault = Fault(FaultMode.EXCEPTION)
    loop = asyncio.new_event_loop()
    ports = free_port(), free_port()

    async def serve() -> list[PlantServer]:
        made = [PlantServer(units, lambda *_: None, "127.0.0.1", port, lean=lean)
                for port, lean in zip(ports, (True, False), strict=True)]
        for server in made:
            await server.serve_forever(background=True)
        return made

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    made = asyncio.run_coroutine_threadsafe(serve(), loop).result(30)
    try:
        yield ports
    finally:
        for server in made:
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def exchange(port: int, writes: list[bytes]) -> bytes:
    """Send each of `writes` (one send each), then end our side: the server answers what
    it got and closes (a request pymodbus cannot parse ends the stream: nothing after it
    is answered). Everything it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for data in writes:
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = []
        while chunk := sock.recv(65536):
            received.append(chunk)
        return b"".join(received)


def frames(data: bytes) -> list[bytes]:
    """The Modbus TCP frames of `data` (MBAP length after 6 header bytes)."""
    out = []
    while len(data) >= 6:
        end = 6 + struct.unpack_from(">H", data, 4)[0]
        out.append(data[:end])
        data = data[end:]
    return out


REQUESTS = st.tuples(
    st.sampled_from([1, 2, 3, 4, 3, 4, 5, 6]),  # reads mostly; writes take pymodbus' path
    st.sampled_from([1, 2, 4, 1, 2, 4, 3, 5, 0]),  # 3 in fault, 5 not served, 0: `unknown`
    st.one_of(st.integers(0, 24), st.integers(0, 65535)),  # address
    # count (or written value): mostly in range; 0, > 125 / 2000 end the stream
    st.one_of(st.integers(1, 25), st.integers(1, 25), st.integers(0, 2100), st.just(0xFF00)),
)


@settings(max_examples=60, derandomize=True)
@given(requests=st.lists(REQUESTS, min_size=1, max_size=40),
       unknown=st.sampled_from([0, 9, 247]))
def test_lean_answers_are_the_bytes_pymodbus_sends(
    servers: Servers, requests: list[tuple[int, int, int, int]], unknown: int
) -> None:
    wire = b"".join(
        struct.pack(">HHHBBHH", tid, 0, 6, unit or unknown, function, address, count)
        for tid, (function, unit, address, count) in enumerate(requests, start=1))
    lean_port, pymodbus_port = servers
    expected = exchange(pymodbus_port, [wire])
    assert expected  # the first request is always answered
    assert exchange(lean_port, [wire]) == expected


def test_requests_split_across_reads_and_other_lengths(servers: Servers) -> None:
    """A request cut in two by the network, and one whose length field is not a plain
    read's (pymodbus' path), answered alike and in order."""
    plain = struct.pack(">HHHBBHH", 1, 0, 6, 2, 4, 0, 1)
    longer = struct.pack(">HHHBBHHB", 2, 0, 7, 1, 3, 0, 2, 0)
    writes = [plain[:5], plain[5:] + longer + plain[:9], plain[9:]]
    lean_port, pymodbus_port = servers
    expected = exchange(pymodbus_port, writes)
    assert exchange(lean_port, writes) == expected
    assert len(frames(expected)) == 3


def test_pymodbus_client_reads_the_lean_answers(servers: Servers) -> None:
    lean_port, pymodbus_port = servers
    with ModbusTcpClient("127.0.0.1", port=lean_port, timeout=5, retries=0) as lean, \
            ModbusTcpClient("127.0.0.1", port=pymodbus_port, timeout=5, retries=0) as plain:
        for unit in (1, 2, 4):
            a = lean.read_holding_registers(0, count=22, device_id=unit)
            b = plain.read_holding_registers(0, count=22, device_id=unit)
            assert not a.isError() and a.registers == b.registers
            a = lean.read_coils(0, count=3, device_id=unit)
            b = plain.read_coils(0, count=3, device_id=unit)
            assert not a.isError() and a.bits == b.bits
        refused = lean.read_holding_registers(60, count=5, device_id=1)
        assert refused.isError() and refused.exception_code == 2
        failing = lean.read_holding_registers(0, count=2, device_id=3)
        assert failing.isError() and failing.exception_code == 4
