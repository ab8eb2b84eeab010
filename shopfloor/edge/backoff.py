"""Capped, jittered exponential backoff for reconnects (Modbus devices, the broker)."""

from __future__ import annotations

import random


class Backoff:
    """Delay before the next attempt: base * 2**(failures-1), capped at `max_s`, with
    "equal jitter" (half fixed, half random) so that many devices that failed together
    do not all retry in the same instant. `reset()` after a success."""

    def __init__(self, base_s: float = 0.5, max_s: float = 30.0, rng: random.Random | None = None):
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Record one more failure; return seconds to wait before the next attempt."""
        self.failures += 1
        ceiling = min(self.max_s, self.base_s * 2 ** min(self.failures - 1, 30))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.failures = 0
