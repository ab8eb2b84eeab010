"""Pure loss accounting: follows `seq` per machine stream. A jump forward counts the
samples in between as lost; a repeat or an older seq counts as a duplicate (the collector
still writes it: a write of the same series and timestamp overwrites, so it is harmless)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Observation:
    lost: int = 0
    duplicate: bool = False


class SequenceTracker:
    """Last seq per stream. Seed it with the last seq stored before a restart
    (`recover`), so that a restart neither reports false losses nor misses real ones."""

    def __init__(self, last: Mapping[str, int] | None = None) -> None:
        self._last: dict[str, int] = dict(last or {})

    def recover(self, last: Mapping[str, int]) -> None:
        for stream, seq in last.items():
            self._last[stream] = max(seq, self._last.get(stream, seq))

    def last(self, stream: str) -> int | None:
        return self._last.get(stream)

    def observe(self, stream: str, seq: int) -> Observation:
        previous = self._last.get(stream)
        if previous is None:
            self._last[stream] = seq
            return Observation()
        if seq <= previous:
            return Observation(duplicate=True)
        self._last[stream] = seq
        return Observation(lost=seq - previous - 1)
