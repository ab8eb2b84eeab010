"""The pollers' shared clock (schedule.Ticker): every poller waiting for a time slot
wakes in the same pass of the event loop, a tick never starts before its time, a passed
tick returns at once, and a cancelled waiter leaves the others waiting."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.edge.schedule import Ticker, slot_for

SLOT = 0.02


async def _wake_passes(offsets: list[float]) -> tuple[list[float], list[int], float]:
    """Wait for `start + offset` from concurrent tasks; when each woke (loop time), in
    which pass of the loop (counted by a callback chain), and the start."""
    loop = asyncio.get_running_loop()
    ticker = Ticker(SLOT)
    start = ticker.align(loop.time() + 0.05)
    passes = [0]

    def count() -> None:
        passes[0] += 1
        loop.call_soon(count)

    loop.call_soon(count)
    woke_at: list[float] = [0.0] * len(offsets)
    woke_pass: list[int] = [0] * len(offsets)

    async def wait(i: int) -> None:
        await ticker.until(start + offsets[i])
        woke_at[i], woke_pass[i] = loop.time(), passes[0]

    await asyncio.gather(*(wait(i) for i in range(len(offsets))))
    return woke_at, woke_pass, start


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 10), min_size=1, max_size=30), st.data())
def test_waiters_of_one_slot_wake_together_never_early(slots: list[int], data: st.DataObject
                                                       ) -> None:
    # Ticks on a slot boundary or inside their slot: rounded up to the slot's end.
    inside = [data.draw(st.sampled_from([0.0]) | st.floats(0.01, 0.99)) for _ in slots]
    offsets = [(k + f) * SLOT for k, f in zip(slots, inside, strict=True)]
    woke_at, woke_pass, start = asyncio.run(_wake_passes(offsets))
    for offset, at in zip(offsets, woke_at, strict=True):
        assert at >= start + offset - 1e-6  # never before its tick (float sums aside)
    by_slot: dict[int, set[int]] = {}
    for k, f, p in zip(slots, inside, woke_pass, strict=True):
        by_slot.setdefault(k + (1 if f else 0), set()).add(p)
    assert all(len(passes) == 1 for passes in by_slot.values())  # one pass per slot
    firsts = [min(by_slot[k]) for k in sorted(by_slot)]
    assert firsts == sorted(firsts)  # slots in order (two may share a pass on a late wake)


def test_a_passed_tick_returns_at_once_and_cancelling_one_waiter_spares_the_others() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ticker = Ticker(SLOT)
        await asyncio.wait_for(ticker.until(loop.time() - 1.0), 0.001 + SLOT)
        target = ticker.align(loop.time() + 3 * SLOT)
        first = asyncio.create_task(ticker.until(target))
        second = asyncio.create_task(ticker.until(target))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.wait_for(second, 30)
        assert loop.time() >= target
        assert first.cancelled()

    asyncio.run(scenario())


def test_intervals_off_the_slot_grid_keep_their_own_timer() -> None:
    async def scenario() -> None:
        ticker = Ticker(SLOT)
        assert ticker.exact(SLOT / 2)  # shorter than a slot
        assert ticker.exact(2.5 * SLOT)  # not a whole number of slots
        assert not ticker.exact(SLOT)
        assert not ticker.exact(1.0)
        assert not ticker.exact(0.3)  # 15 slots, whatever the float sum says
        assert Ticker(0.1).exact(0.25) and not Ticker(0.1).exact(0.7)

    asyncio.run(scenario())


def test_the_slot_is_the_widest_that_holds_a_hundred_polls() -> None:
    assert slot_for(100) == 0.1  # 10 polls a slot
    assert slot_for(1_000) == 0.1  # 100
    assert slot_for(2_000) == 0.05  # 100 (200 in a 100 ms slot)
    assert slot_for(4_000) == 0.02  # 80
    assert slot_for(50_000) == 0.02  # the narrowest, even past 100 a slot
    assert slot_for(0) == 0.1  # an agent with nothing to poll
