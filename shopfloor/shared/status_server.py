"""A small HTTP endpoint for a component's own health: `/metrics` (Prometheus text
format, from prometheus_client's registry) and `/healthz` (JSON from a callable; 200 when
healthy, 503 when not). Runs in a daemon thread so that a busy event loop or a stuck
write never hides the component's metrics."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def _handler(registry: CollectorRegistry, health: HealthCheck) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, detail = health()
                body = json.dumps({"ok": ok, **detail}, default=str).encode()
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("status http: " + format, *args)

    return Handler


class StatusServer:
    """`/metrics` and `/healthz` on host:port (port 0 picks a free one; see `.port`)."""

    def __init__(
        self,
        port: int,
        health: HealthCheck,
        host: str = "127.0.0.1",
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(registry, health))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="status-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> StatusServer:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", *self._server.server_address[:2])
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class StatusFigures(Collector):
    """A component's figures read when scraped (`collect`) and its health (`health`),
    in a registry of their own, served by a StatusServer once `start` is given a port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self._server: StatusServer | None = None

    def health(self) -> tuple[bool, dict[str, Any]]:
        raise NotImplementedError

    def start(self, port: int | None) -> None:
        if port is not None:
            self._server = StatusServer(port, self.health, registry=self.registry).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
