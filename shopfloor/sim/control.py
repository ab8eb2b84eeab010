"""A small HTTP control endpoint of a running simulator (`shopfloor sim --control-port`),
for tests and people outside the process. Loopback by default; JSON answers.

    GET  /machines               every machine's state (see Simulator.machine_state)
    GET  /machines/ID            one machine's state
    GET  /faults                 machines not in normal mode -> mode
    POST /faults/ID?mode=MODE    set a fault mode: normal, silent, slow, slow:SECONDS, exception

Runs the stdlib's ThreadingHTTPServer in a thread; every call into the simulator is
handed to the simulator's event loop, so the simulator is only touched from its loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shopfloor.sim.errors import PortInUse, SimError
from shopfloor.sim.simulator import Simulator

log = logging.getLogger(__name__)
_CALL_TIMEOUT_S = 10.0


class ControlServer:
    """The control endpoint of `sim`, served from a thread until `close()`."""

    def __init__(self, sim: Simulator, host: str, port: int) -> None:
        self.sim = sim
        self.loop = asyncio.get_running_loop()
        handler = type("Handler", (_Handler,), {"control": self})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise PortInUse(
                host, port, os.strerror(exc.errno).lower() if exc.errno else str(exc)
            ) from exc
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="sim-control", daemon=True
        )
        self._thread.start()
        log.info("control endpoint on http://%s:%d", host, self.port)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the simulator's loop and return its result (from the HTTP thread)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(_CALL_TIMEOUT_S)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    control: ControlServer

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urlsplit(self.path).path.strip("/").split("/")
        sim = self.control.sim
        if parts == ["machines"]:
            self._answer(
                200, self.control.call(lambda: {m: sim.machine_state(m) for m in sim.devices})
            )
        elif len(parts) == 2 and parts[0] == "machines":
            self._guarded(lambda: sim.machine_state(parts[1]))
        elif parts == ["faults"]:
            self._answer(200, self.control.call(sim.faults))
        else:
            self._answer(404, {"error": f"no such resource {self.path}"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        mode = parse_qs(url.query).get("mode", [""])[0]
        if len(parts) != 2 or parts[0] != "faults" or not mode:
            self._answer(404, {"error": "use POST /faults/MACHINE?mode=MODE"})
            return
        sim = self.control.sim

        def set_fault() -> dict[str, str]:
            sim.set_fault(parts[1], mode)
            return {"machine": parts[1], "mode": sim.devices[parts[1]].fault.mode.value}

        self._guarded(set_fault)

    def _guarded(self, fn: Callable[[], Any]) -> None:
        try:
            self._answer(200, self.control.call(fn))
        except SimError as exc:
            self._answer(400, {"error": str(exc)})

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        log.debug("control: " + format, *args)
