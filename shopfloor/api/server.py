"""The API's HTTP server: uvicorn's h11 protocol with the limits uvicorn lacks, so that
slow or idle clients cannot make the API unreachable (e.g. 1,100 half-sent requests
holding every file descriptor).

- **Request timeout** (`request_timeout_s`): a connection must deliver a complete
  request (head and body) within this time of opening, or of its previous answer; else
  it is closed. uvicorn's own keep-alive timeout (`keep_alive_s`) is cancelled by any
  byte received, so on its own a client sending a byte now and then holds a connection
  forever.
- **Connection limit** (`max_connections`, lowered to what the process's file-descriptor
  limit leaves room for): when it is reached, a new connection evicts the oldest one that
  is still waiting for its request (half-sent, or idle between requests); when every
  connection is busy with a request, the new one gets 503 and is closed.

uvicorn runs with `http=` this protocol class (its documented extension point)."""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from shopfloor.api.config import ApiSettings
from shopfloor.shared.logs import FailureLog

log = logging.getLogger(__name__)

ACCEPT_BACKLOG = 128
"""Listen backlog; asyncio also accepts at most this many connections in one go, before
any of them can evict an older one: the file descriptors kept free include it."""
FD_RESERVE = 64 + ACCEPT_BACKLOG
"""File descriptors kept free for everything else (broker, database, state files, logs)."""
MIN_CONNECTIONS = 4
GRACEFUL_SHUTDOWN_S = 10
"""On SIGTERM, requests still running after this long are cancelled: an open operator
page's event stream (api/operator/) would otherwise hold the shutdown until it ends."""
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
        b"retry-after: 1\r\nconnection: close\r\ncontent-length: 25\r\n\r\n"
        b"too many open connections")
WAITING = (h11.IDLE, h11.SEND_BODY)  # the client still owes (part of) a request


@dataclass(frozen=True)
class Limits:
    max_connections: int
    request_timeout_s: float


def raise_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to `needed` where the hard limit allows (the soft
    default of 1024 is often far below the hard one); the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
    return target


def connection_limit(wanted: int, nofile: int | None = None) -> int:
    """`wanted`, lowered to what the process's soft RLIMIT_NOFILE (or `nofile`) leaves after
    FD_RESERVE, never below MIN_CONNECTIONS."""
    soft = nofile if nofile is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(MIN_CONNECTIONS, min(wanted, soft - FD_RESERVE))


class GuardedH11Protocol(H11Protocol):
    """H11Protocol with a request deadline and a connection limit (module docstring).
    `limits` and `waiting` are class attributes of the subclass `protocol_for` makes."""

    limits: ClassVar[Limits]
    waiting: ClassVar[dict[GuardedH11Protocol, None]]  # oldest first
    overload: ClassVar[FailureLog]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections and not self._evict_oldest():
            self._refused = True
            self.overload.failure("%d connections, all busy: new ones get 503",
                                  len(self.connections))
            transport.write(BUSY)
            transport.close()
            return
        super().connection_made(transport)
        if self.overload.failing:
            self.overload.success()
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._untrack()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def _track(self) -> None:
        """Arm the deadline when the connection starts waiting for a request; disarm it
        once the whole request is in."""
        waiting = self.conn.their_state in WAITING and not self.transport.is_closing()
        if waiting and self not in self.waiting:
            self.waiting[self] = None
            self._deadline = self.loop.call_later(self.limits.request_timeout_s, self._expire)
        elif not waiting:
            self._untrack()

    def _untrack(self) -> None:
        self.waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        log.debug("closing %s: no complete request within %.1f s", self.client,
                  self.limits.request_timeout_s)
        self._untrack()
        self.transport.close()

    def _evict_oldest(self) -> bool:
        oldest = next(iter(self.waiting), None)
        if oldest is None:
            return False
        log.debug("connection limit %d reached: closing %s, still waiting for its request",
                  self.limits.max_connections, oldest.client)
        oldest._expire()
        return True


def protocol_for(limits: Limits) -> type[GuardedH11Protocol]:
    """A protocol class with its own limits and its own list of waiting connections."""
    return type("ShopfloorH11Protocol", (GuardedH11Protocol,), {
        "limits": limits, "waiting": {},
        "overload": FailureLog(log, "HTTP connection limit"),
    })


def serve(app: Any, settings: ApiSettings) -> None:
    """Run `app` under uvicorn with the settings' limits until SIGTERM/SIGINT."""
    nofile = raise_fd_limit(settings.max_connections + FD_RESERVE)
    limit = connection_limit(settings.max_connections, nofile)
    if limit < settings.max_connections:
        log.warning("max_connections lowered from %d to %d: the file-descriptor limit is %d "
                    "(raise LimitNOFILE)", settings.max_connections, limit, nofile)
    protocol = protocol_for(Limits(limit, settings.request_timeout_s))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                access_log=False, http=protocol, timeout_keep_alive=settings.keep_alive_s,
                backlog=ACCEPT_BACKLOG, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
