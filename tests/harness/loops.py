"""A coroutine on its own event loop in a thread, for tests that run one of our async
components (an edge agent, say) in-process next to real services."""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from collections.abc import Callable, Coroutine
from typing import Any


class LoopThread:
    """Runs `make(stop_event)` on its own loop in a thread; `stop()` sets the event."""

    def __init__(self, make: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        self._make = make
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._make(self._stop)

        try:
            asyncio.run(run())
        except BaseException as exc:  # noqa: BLE001 - surfaced by the caller
            self.error = exc

    def start(self) -> LoopThread:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def where(self) -> str:
        """The thread's stack and the loop's tasks, for a stop that hangs."""
        frame = sys._current_frames().get(self._thread.ident or 0)
        stack = "".join(traceback.format_stack(frame)) if frame else "(no frame)"
        tasks = ""
        if self._loop is not None:
            tasks = "\n".join(repr(t) for t in asyncio.all_tasks(self._loop))[:4000]
        return f"{stack}\ntasks:\n{tasks}"

    def stop(self, timeout_s: float = 20) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), f"loop thread did not stop:\n{self.where()}"
