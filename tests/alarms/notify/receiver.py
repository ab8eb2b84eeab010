"""A real webhook receiver for the tests: an HTTP server on a free 127.0.0.1 port that
checks each request's HMAC-SHA256 signature itself (stdlib hmac, not our code), can be
told to fail the next attempts, to hang, or to go down and come back on the same port,
and counts the notifications it accepted by their idempotency key."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRETS = {"OPS_HOOK_SECRET": "ops-secret-0123456789",
           "LEAD_HOOK_SECRET": "lead-secret-0123456789"}
"""Secrets of the tests' two webhooks, as the alarm component's environment."""


def health(port: int) -> dict[str, Any]:
    """The notifier's /healthz body (also when it answers 503: a target failing)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))


@dataclass(frozen=True)
class Request:
    key: str
    event: str
    attempt: int
    signed: bool
    body: dict[str, Any]
    status: int
    received_at: float
    """time.monotonic() when the request came."""


class Receiver:
    def __init__(self, secret: str, port: int = 0) -> None:
        self.secret = secret.encode()
        self.fail_next = 0
        """Answer this many of the next requests with 503."""
        self.retry_after: str | None = None
        """Retry-After header of those 503 answers."""
        self.hold = threading.Event()
        """While set, a request waits (a hanging receiver) until `release` is set."""
        self.release = threading.Event()
        self.garbage = False
        """While true, answer with bytes that are not HTTP."""
        self.trickle = False
        """While true, answer with a head that never ends (a byte every 0.2 s)."""
        self.requests: list[Request] = []
        self.accepted: dict[str, dict[str, Any]] = {}
        """Body by idempotency key, first accepted delivery only (a duplicate is counted
        in `duplicates`)."""
        self.duplicates = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = port
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stop listening: connections are refused until `up()`."""
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def verify(self, timestamp: str, body: bytes, signature: str) -> bool:
        expected = hmac.new(self.secret, f"{timestamp}.".encode() + body,
                            hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"sha256={expected}", signature)

    def accepted_keys(self, kind: str | None = None) -> list[str]:
        with self._lock:
            return [k for k, b in self.accepted.items() if kind is None or b["type"] == kind]

    def _answer(self, headers: Any, raw: bytes) -> int:
        """The status to answer with; the request recorded (and counted when accepted)."""
        received_at = time.monotonic()
        if self.hold.is_set():
            self.release.wait(60)
        signed = self.verify(headers.get("X-Shopfloor-Timestamp", ""), raw,
                             headers.get("X-Shopfloor-Signature", ""))
        body = json.loads(raw)
        key = headers.get("Idempotency-Key", "")
        with self._lock:
            if not signed or key != body.get("key"):
                status = 401
            elif self.fail_next > 0:
                self.fail_next -= 1
                status = 503
            else:
                status = 200
                if key in self.accepted:
                    self.duplicates += 1
                else:
                    self.accepted[key] = body
            self.requests.append(Request(key, headers.get("X-Shopfloor-Event", ""),
                                         int(headers.get("X-Shopfloor-Attempt", 0)),
                                         signed, body, status, received_at))
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.trickle:
                    self._trickle()
                    return
                if receiver.garbage:
                    self.close_connection = True
                    self.wfile.write(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
                    return
                status = receiver._answer(self.headers, raw)
                self.send_response(status)
                if status == 503 and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _trickle(self) -> None:
                self.close_connection = True
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    for _ in range(600):  # two minutes at most
                        self.wfile.write(b"z")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:  # the client gave up: what the test wants
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler

    def close(self) -> None:
        self.release.set()
        if self._server is not None:
            self.down()
