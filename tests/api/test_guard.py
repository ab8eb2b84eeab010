"""api/guard.py as pure logic: which requests carry a body, and the WorkLimiter's slots
(the real-process test is tests/system/test_unbounded_api.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from starlette.datastructures import Headers

from shopfloor.api.errors import Busy, TimedOut
from shopfloor.api.guard import WorkLimiter, carries_body


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, False),
    ({"content-length": "0"}, False),
    ({"content-length": "12"}, True),
    ({"content-length": "52428800"}, True),
    ({"transfer-encoding": "chunked"}, True),
])
def test_carries_body(headers: dict[str, str], expected: bool) -> None:
    assert carries_body(Headers(headers)) is expected


def test_a_timed_out_thread_keeps_its_slot_until_it_ends() -> None:
    async def scenario() -> None:
        limiter = WorkLimiter(1, 0.05)
        release = threading.Event()
        try:
            with pytest.raises(TimedOut):
                await limiter.thread(lambda: release.wait(10), "slow work")
            with pytest.raises(Busy):  # the abandoned thread still runs: no second one
                await limiter.thread(lambda: 1, "next work")
            release.set()
            await asyncio.sleep(0.1)
            assert await limiter.thread(lambda: 2, "after") == 2
        finally:
            release.set()
            limiter.close()

    asyncio.run(scenario())


def test_async_work_is_cancelled_at_the_limit_and_frees_its_slot() -> None:
    async def scenario() -> None:
        limiter = WorkLimiter(1, 0.05)
        with pytest.raises(TimedOut):
            async with limiter.slot("query"):
                await asyncio.sleep(5)
        async with limiter.slot("query"):  # freed at once: the query was cancelled
            pass
        limiter.close()

    asyncio.run(scenario())
