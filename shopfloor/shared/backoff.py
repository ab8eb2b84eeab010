"""Capped, jittered exponential backoff: the one retry rhythm of every component (edge
reconnects to devices and the broker, the collector's InfluxDB writes and broker
reconnects). Our retry loops wait on something interruptible (an `asyncio.sleep` that a
shutdown cancels, a `threading.Event.wait` that a stop sets), so they need delays, not a
retry decorator: this is the whole mechanism (docs/architecture.md)."""

from __future__ import annotations

import random
from collections.abc import Iterator

_RNG = random.Random()
"""The generator of every Backoff given none (ours: no shared global random state)."""


class Backoff:
    """Delay before the next attempt: base * 2**(failures-1), capped at `max_s`, with
    "equal jitter" (half fixed, half random) so that many clients that failed together
    do not all retry in the same instant. `reset()` after a success."""

    def __init__(self, base_s: float = 0.5, max_s: float = 30.0, rng: random.Random | None = None):
        if not 0 < base_s <= max_s:
            raise ValueError(f"backoff needs 0 < base_s <= max_s, got {base_s}, {max_s}")
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0
        # Our own generator, not the global one; shared by all Backoffs that get none
        # (a Random holds 2.5 kB of state: thousands of supervised pollers each had one).
        self._rng = rng or _RNG

    def next_delay(self) -> float:
        """Record one more failure; return seconds to wait before the next attempt."""
        self.failures += 1
        ceiling = min(self.max_s, self.base_s * 2 ** min(self.failures - 1, 30))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0

    def delays(self) -> Iterator[float]:
        """Endless delays from a fresh start (for `for delay in ...` retry loops)."""
        self.reset()
        while True:
            yield self.next_delay()
