"""Slow and idle clients cannot make the API unreachable: `shopfloor api` as a real process
with a small file-descriptor limit, flooded with more half-sent requests than it has
descriptors, still answers a normal request; half-sent, trickling and idle keep-alive
connections are closed after their timeouts; when every connection is busy with a request
a new one gets 503 (shopfloor/api/server.py)."""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shopfloor.api.server import FD_RESERVE, MIN_CONNECTIONS, connection_limit
from tests.api.harness import ApiProcess, wait_for
from tests.harness.services import LOOPBACK

NOFILE = 512  # the API process's descriptor limit: room for 512 - FD_RESERVE connections
REQUEST_TIMEOUT_S = 2.0
KEEP_ALIVE_S = 1
HALF_REQUEST = b"GET /api/v1/plant HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: "


@pytest.fixture
def api(mosquitto: Any, influxdb: Any, tmp_path: Path) -> Iterator[ApiProcess]:
    proc = ApiProcess.create(tmp_path, mosquitto.port, influxdb.url, 2.5)
    proc.api.nofile = NOFILE
    proc.api.env = {"SHOPFLOOR_API_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
                    "SHOPFLOOR_API_KEEP_ALIVE_S": str(KEEP_ALIVE_S)}
    try:
        proc.api.start()
        yield proc
    finally:
        proc.close()


def _port(api: ApiProcess) -> int:
    return int(api.url.rsplit(":", 1)[1])


def open_half_sent(port: int, count: int) -> list[socket.socket]:
    """Connections that send part of a request head and then nothing (as an attacker
    would: those the server does not take in time are given up)."""
    opened = []
    for _ in range(count):
        try:
            sock = socket.create_connection((LOOPBACK, port), timeout=2)
            sock.sendall(HALF_REQUEST)
        except OSError:
            continue
        opened.append(sock)
    return opened


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass  # a 503 or an answer, then the close
    except TimeoutError:
        return False
    except OSError:
        return True  # reset
    return True


def test_half_sent_flood_beyond_the_fd_limit_leaves_the_api_reachable(api: ApiProcess
                                                                      ) -> None:
    own_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    flood = min(NOFILE + 100, own_limit - 200)  # stay under this test process's own limit
    assert flood > NOFILE > connection_limit(1000, NOFILE) == NOFILE - FD_RESERVE
    socks = open_half_sent(_port(api), flood)
    try:
        assert len(socks) > NOFILE - FD_RESERVE
        with api.client("viewer") as client:
            answer = client.get("/api/v1/plant", timeout=15)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + REQUEST_TIMEOUT_S + 5
        lingering = [s for s in socks
                     if not closed_by_server(s, max(0.01, deadline - time.monotonic()))]
        assert not lingering, f"{len(lingering)} half-sent connections still open"
    finally:
        for sock in socks:
            sock.close()
    assert api.api.alive
    with api.client("viewer") as client:
        assert client.get("/api/v1/plant", timeout=5).status_code == 200


def test_trickling_and_idle_connections_are_closed(api: ApiProcess) -> None:
    port = _port(api)
    with contextlib.closing(socket.create_connection((LOOPBACK, port), timeout=5)) as trickle:
        started = time.monotonic()
        closed = False
        for byte in HALF_REQUEST * 4:  # one byte every 0.2 s: uvicorn alone never times out
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.2)
            if time.monotonic() - started > REQUEST_TIMEOUT_S + 3:
                break
        assert closed or closed_by_server(trickle, 1.0)
        assert time.monotonic() - started < REQUEST_TIMEOUT_S + 3
    with contextlib.closing(socket.create_connection((LOOPBACK, port), timeout=5)) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 ")
        assert closed_by_server(idle, KEEP_ALIVE_S + 3)


def test_when_every_connection_is_busy_a_new_one_gets_503(mosquitto: Any, influxdb: Any,
                                                          tmp_path: Path) -> None:
    proc = ApiProcess.create(tmp_path, mosquitto.port, influxdb.url, 4.0)
    proc.api.env = {"SHOPFLOOR_API_MAX_CONNECTIONS": str(MIN_CONNECTIONS)}
    machines = ["press1", "weld1", "paint1", "pack1"][:MIN_CONNECTIONS]
    for machine in machines:
        proc.edge.mode[machine] = "silent"  # the API waits for a result: the request is busy
    busy: list[socket.socket] = []
    try:
        proc.api.start()
        port = _port(proc)
        for machine in machines:
            busy.append(socket.create_connection((LOOPBACK, port), timeout=10))
            busy[-1].sendall(f"POST /api/v1/machines/{machine}/stop HTTP/1.1\r\nHost: x\r\n"
                             f"X-API-Key: {proc.keys['admin']}\r\nContent-Length: 0\r\n\r\n"
                             .encode())
        wait_for(lambda: len(proc.edge.silent) == len(machines), what="commands sent")
        with contextlib.closing(socket.create_connection((LOOPBACK, port), timeout=5)) as extra:
            refused = extra.recv(4096)
        assert refused.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in refused, refused
        answers = [sock.recv(4096) for sock in busy]  # the commands time out: 504
        assert all(a.startswith(b"HTTP/1.1 504") for a in answers), answers
        with proc.client("viewer") as client:  # idle now: a new connection evicts one
            assert client.get("/api/v1/plant", timeout=5).status_code == 200
    finally:
        for sock in busy:
            sock.close()
        proc.close()


def test_the_soft_fd_limit_is_raised_as_far_as_the_hard_limit_allows() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = 1000 + FD_RESERVE
    expected = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    code = ("import resource; from shopfloor.api.server import raise_fd_limit; "
            f"print(raise_fd_limit({wanted}), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)))
    assert done.stdout.split() == [str(expected), str(expected)]
