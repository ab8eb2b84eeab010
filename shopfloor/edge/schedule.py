"""The pollers' clock: one timer per time slot for all machines, not one per machine.

Poll schedules are grids (start + k × interval) whose start is aligned to a slot of
`SLOT_S`; a poller waiting for its next tick waits for the slot that tick falls in
(rounded up), and one timer per slot wakes every poller of that slot in the same pass of
the event loop. Polls of one slot then share their work: their Modbus requests to one
gateway go out in one send, their answers come back in few receives, their messages
land in one group commit and one MQTT write — instead of a timer, a selector wait and a
send for every machine, spread over the second. At 1,000 machines at 1 Hz there are 10
slots a second of 100 polls each; the event loop's timer heap holds a few slots instead
of a timer per machine.

A grid aligned to the slots starts its polls exactly on time. An interval that is not a
multiple of the slot (shorter than one, or 0.25 s against 0.1 s slots) is timed on its
own (`exact`): its ticks are never rounded to a later slot.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from functools import partial

log = logging.getLogger(__name__)

SLOT_S = 0.1
"""The widest time slot; every poll starts at a slot boundary. At 1,000 machines behind
gateways (1 Hz) 100 ms slots cost 175-197 us of CPU per poll against 203-217 us for
20 ms slots (back-to-back runs, docs/edge.md): five times fewer, bigger batches: fewer
sends, wake-ups and commits, and the code of a pass stays in the CPU's caches. An
interval that is not a multiple of the slot is timed on its own (`exact`), so the wider
slot never delays a tick."""
SLOTS_S = (0.02, 0.05, SLOT_S)
POLLS_PER_SLOT = 100
"""An agent's slot is the widest of `SLOTS_S` that holds at most this many polls
(`slot_for`): 100 ms at 1,000 machines (1 Hz), where it was measured cheaper; at 4,000
the 20 ms slots of 80 polls that had held 3,984 polls/s, not untried 400-poll bursts
(100 ms slots there: 247 polls/s shed; but 20 ms slots shed 318/s in a run right after,
so the bursts are not shown to be the cause; docs/edge.md)."""


def slot_for(polls_per_s: float) -> float:
    """The time slot for an agent polling `polls_per_s` (at full rate): the widest of
    `SLOTS_S` with at most `POLLS_PER_SLOT` polls in it, the narrowest if none is."""
    fits = [slot for slot in SLOTS_S if polls_per_s * slot <= POLLS_PER_SLOT]
    return max(fits, default=SLOTS_S[0])
_TOLERANCE = 1e-6
"""A tick this close after a slot boundary (float sums) belongs to that slot."""


class Ticker:
    """Shared by the pollers of one agent (event loop thread only)."""

    def __init__(self, slot_s: float = SLOT_S) -> None:
        self.slot_s = slot_s
        self._loop = asyncio.get_running_loop()
        self._slots: dict[int, list[Callable[[], object]]] = {}

    def align(self, t: float) -> float:
        """The first slot boundary at or after `t` (where a schedule starts)."""
        return self._slot(t) * self.slot_s

    def exact(self, interval_s: float) -> bool:
        """True when ticks `interval_s` apart need their own timer: shorter than a slot,
        or not a whole number of slots (a grid that would drift off the slot
        boundaries)."""
        slots = interval_s / self.slot_s
        return interval_s < self.slot_s or abs(slots - round(slots)) > _TOLERANCE * slots

    def at(self, t: float, callback: Callable[[], object]) -> None:
        """Call `callback()` at the slot boundary at or after `t` (in the next pass of the
        event loop if that has passed), in the same pass as every other callback of that
        slot. A callback that raises is logged; the others still run."""
        slot = self._slot(t)
        if slot * self.slot_s <= self._loop.time():
            self._loop.call_soon(callback)
            return
        waiters = self._slots.get(slot)
        if waiters is None:
            waiters = self._slots[slot] = []
            self._loop.call_at(slot * self.slot_s, self._fire, slot)
        waiters.append(callback)

    async def until(self, t: float) -> None:
        """Return at the slot boundary at or after `t` (at once if that has passed), in the
        same pass of the event loop as every other waiter of that slot."""
        if self._slot(t) * self.slot_s <= self._loop.time():
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self.at(t, partial(_wake, waiter))
        await waiter  # a cancelled waiter cancels its own future only

    def _fire(self, slot: int) -> None:
        for callback in self._slots.pop(slot, ()):
            try:
                callback()
            except Exception:  # noqa: BLE001 - one machine's bug must not stop the slot
                log.exception("a poll of time slot %d failed to start", slot)

    def _slot(self, t: float) -> int:
        return math.ceil(t / self.slot_s - _TOLERANCE)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
