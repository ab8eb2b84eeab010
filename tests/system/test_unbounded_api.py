"""Unbounded work from one HTTP request (issue 11), against `shopfloor api` as its own
process (uvicorn) over real sockets:

* a body is never read before the key is checked, and is capped (413);
* raw history is bounded by `api.max_raw_window_s` (422, reason named);
* on-demand reads run under `api.query_timeout_s` and `api.max_concurrent_reads`:
  a database that hangs gives 503 + Retry-After (timeout, then busy while the abandoned
  KPI computation still holds its slot), and the API keeps answering everything else."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shopfloor.shared.loader import load_plant
from tests.api.harness import COMMAND_TIMEOUT_S, make_keys, plant_data
from tests.harness.plants import write_plant
from tests.harness.processes import ComponentProcess, ports_open
from tests.harness.services import LOOPBACK, Mosquitto
from tests.system.report import record

MB = 1024 * 1024
HUNG_DB_TIMEOUT_S = 6.0  # the API's own database timeout: the KPI thread's lifetime


class HungDatabase:
    """A TCP listener that accepts connections and never answers: a database that hangs
    (fault injection, like a silent Modbus device)."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def api(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    keys = make_keys()
    hung = HungDatabase()
    data = plant_data(tmp_path, mosquitto.port, f"http://{LOOPBACK}:{hung.port}", keys,
                      COMMAND_TIMEOUT_S)
    data["database"]["timeout_s"] = HUNG_DB_TIMEOUT_S
    data["api"].update(max_body_bytes=64 * 1024, max_raw_window_s=86400,
                       query_timeout_s=1.0, max_concurrent_reads=1)
    plant_file = write_plant(data, tmp_path / "plant.yaml")
    port = load_plant(plant_file).api.port
    proc = ComponentProcess("api", ["api", str(plant_file)], tmp_path,
                            healthy=ports_open([port]),
                            env={"SHOPFLOOR_API_STATE_DIR": str(tmp_path / "api")})
    try:
        proc.start()
        yield f"http://{LOOPBACK}:{port}", keys
        assert proc.alive, proc.log_tail()
    finally:
        proc.stop()
        hung.close()


def _post_headers(url: str, key: str, length: int | None) -> tuple[socket.socket, bytes]:
    """Open a connection and send the headers of a POST whose body is not sent yet."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=5)
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    head = (f"POST /api/v1/lines/line1/stocktake HTTP/1.1\r\nHost: {host}\r\n"
            f"X-API-Key: {key}\r\nContent-Type: application/json\r\n{size}\r\n\r\n")
    conn.sendall(head.encode())
    return conn, b""


def _status(conn: socket.socket) -> tuple[int, bytes]:
    """The status code of the answer (within the socket's timeout) and what came."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
    return int(got.split(b" ", 2)[1]), got


def test_body_is_not_read_before_the_key_and_is_capped(
        api: tuple[str, dict[str, str]]) -> None:
    url, keys = api
    # A wrong key with a body within the cap: 401 before the body is sent at all.
    conn, _ = _post_headers(url, "wrong-key", 60_000)
    status, answer = _status(conn)
    assert status == 401, answer
    conn.close()
    # 50 MB announced, wrong key or right key: answered at once, nothing of it read.
    for key in ("wrong-key", keys["admin"]):
        conn, _ = _post_headers(url, key, 50 * MB)
        conn.sendall(b"{" + b" " * 1000)
        status, _answer = _status(conn)
        assert status in (401, 413) if key == "wrong-key" else status == 413, status
        conn.close()
    # Streamed (chunked) with a valid key: refused once past the cap, while streaming.
    conn, _ = _post_headers(url, keys["admin"], None)
    sent, answer = 0, b""
    while sent < 10 * MB and not answer:
        part = b" " * 16384
        try:
            conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        except OSError:
            break  # the server answered and closed
        sent += len(part)
        time.sleep(0.002)
        conn.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            answer = conn.recv(65536)
        conn.setblocking(True)
    conn.settimeout(5)
    status = int(answer.split(b" ", 2)[1]) if answer else _status(conn)[0]
    assert status == 413
    assert sent < 1 * MB, sent  # answered once the cap was passed, not at the end
    conn.close()
    with httpx.Client(base_url=url, headers={"X-API-Key": keys["admin"]}) as client:
        small = client.post("/api/v1/lines/line1/stocktake", content=b'{"count": "x"}',
                            headers={"Content-Type": "application/json"})
        assert small.status_code == 422  # within the cap: read and validated as before
    record("unbounded", input="POST with a 50 MB body (wrong key / valid key), chunked "
                              "bodies past 64 KiB",
           outcome="wrong key: 401 (or 413 when the announced length is over the cap) "
                   "before the body is read; valid key: 413 at once, or once 64 KiB "
                   "streamed in")


def test_on_demand_reads_are_bounded_in_window_time_and_number(
        api: tuple[str, dict[str, str]]) -> None:
    url, keys = api
    with httpx.Client(base_url=url, headers={"X-API-Key": keys["viewer"]},
                      timeout=30) as client:
        end = dt.datetime.now(dt.UTC).replace(microsecond=0)
        start = end - dt.timedelta(days=2)
        window = {"start": start.isoformat(), "end": end.isoformat()}
        raw = client.get("/api/v1/machines/press1/history", params=window)
        assert raw.status_code == 422
        assert raw.json()["error"]["code"] == "window_too_large"
        assert "max_raw_window_s" in raw.json()["error"]["message"]

        began = time.monotonic()
        slow = client.get("/api/v1/machines/press1/oee", params=window)
        took = time.monotonic() - began
        assert slow.status_code == 503 and slow.json()["error"]["code"] == "timeout"
        assert slow.headers["Retry-After"].isdigit()
        assert took < HUNG_DB_TIMEOUT_S - 1, took
        # The abandoned computation still runs (its thread cannot be stopped): it keeps
        # the only slot, so the next read is refused instead of piling up behind it.
        busy = client.get("/api/v1/machines/press1/history",
                          params={**window, "interval_s": 3600})
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "busy"
        assert busy.headers["Retry-After"].isdigit()
        live = client.get("/api/v1/machines/press1/state")
        assert live.status_code == 200  # everything else still answers
        time.sleep(HUNG_DB_TIMEOUT_S)  # the abandoned computation has ended by now
        again = client.get("/api/v1/machines/press1/history",
                           params={**window, "interval_s": 3600})
        assert again.status_code == 503 and again.json()["error"]["code"] == "timeout"
    record("unbounded", input="raw history over 2 days; OEE and history while the "
                              "database hangs (1 slot, 1 s limit)",
           outcome="422 `window_too_large`; 503 `timeout` after 1 s, then 503 `busy` while "
                   "the abandoned computation holds its slot (both with Retry-After); live "
                   "state still 200")
