"""Upper bounds on the work one HTTP request can cause (docs/api.md, "Limits"):

* `KeyFirst` (ASGI middleware): a request that carries a body is answered 401 before a
  byte of the body is read when its API key is missing or unknown. The body cap itself
  is FastAPI's `max_body_size` (`api.max_body_bytes`, 413), checked on the declared
  length before reading and on the bytes as they stream in;
* `WorkLimiter`: on-demand reads (every InfluxDB query the API makes, every KPI
  computation) run at most `api.max_concurrent_reads` at once and at most
  `api.query_timeout_s` each; a read that finds no slot within `BUSY_WAIT_S` or runs
  too long is answered 503 with Retry-After (`Busy`, `TimedOut`), so a burst of
  expensive requests queues nothing without bound. A KPI computation runs in a thread
  that cannot be interrupted: its slot stays taken until the thread ends, even after
  its caller got the 503, so timed-out work never piles up behind new work."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shopfloor.api.errors import Busy, TimedOut
from shopfloor.api.models.common import error_body
from shopfloor.api.security import authenticate
from shopfloor.shared.plant import ApiKey

T = TypeVar("T")
BUSY_WAIT_S = 1.0  # how long a read waits for a free slot before 503 busy
API_KEY_HEADER = "x-api-key"


def carries_body(headers: Headers) -> bool:
    """True when the request announces a body (a length above 0, or chunked)."""
    length = headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in headers


class KeyFirst:
    """Pure ASGI middleware: no body is read from a caller without a valid API key."""

    def __init__(self, app: ASGIApp, keys: list[ApiKey]) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if carries_body(headers):
                key = headers.get(API_KEY_HEADER)
                if not key or authenticate(key, self.keys) is None:
                    message = "unknown API key" if key else "missing X-API-Key header"
                    response = JSONResponse(error_body(401, "unauthorized", message), 401,
                                            headers={"Connection": "close"})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class WorkLimiter:
    """Slots and a time limit for on-demand reads (see the module docstring)."""

    def __init__(self, slots: int, timeout_s: float) -> None:
        self.slots = slots
        self.timeout_s = timeout_s
        self._free = asyncio.Semaphore(slots)
        self._executor = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="api-read")

    async def _acquire(self, what: str) -> None:
        try:
            async with asyncio.timeout(BUSY_WAIT_S):
                await self._free.acquire()
        except TimeoutError:
            raise Busy(f"{what}: all {self.slots} slots for on-demand reads are busy; "
                       "retry later") from None

    def _timed_out(self, what: str) -> TimedOut:
        return TimedOut(f"{what} took longer than {self.timeout_s:g} s "
                        "(api.query_timeout_s): ask for a shorter window")

    @asynccontextmanager
    async def slot(self, what: str) -> AsyncIterator[None]:
        """Async work (a database query) in a slot, cancelled after `timeout_s`."""
        await self._acquire(what)
        try:
            async with asyncio.timeout(self.timeout_s):
                yield
        except TimeoutError:
            raise self._timed_out(what) from None
        finally:
            self._free.release()

    async def thread(self, fn: Callable[[], T], what: str) -> T:
        """`fn()` in a worker thread of a slot; the slot is freed when `fn` returns."""
        await self._acquire(what)
        try:
            work: Future[T] = self._executor.submit(fn)
        except RuntimeError:  # executor shut down (the app is stopping)
            self._free.release()
            raise
        loop = asyncio.get_running_loop()

        def finished(done: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                loop.call_soon_threadsafe(self._finished, done)

        work.add_done_callback(finished)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(work)),
                                          self.timeout_s)
        except TimeoutError:
            raise self._timed_out(what) from None

    def _finished(self, done: Future[Any]) -> None:
        self._free.release()
        if not done.cancelled():
            done.exception()  # retrieved: a late failure after a timeout is not logged

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
