"""Pure loss accounting: follows `seq` per machine stream.

* `seq == last + 1`: in order.
* a jump forward opens a **hole** of the seqs in between: they are *missing* (a gauge),
  not yet lost — across a broker restart or a session redelivery, messages can arrive out
  of order. A hole still open `grace_s` seconds later is confirmed **lost**.
* a seq inside an open hole is **late**: it fills the hole (not lost, not a duplicate).
* any other seq at or below the last one is a **duplicate** (the collector still writes
  it: same series and timestamp overwrite, so it is harmless).

Times are monotonic seconds passed in by the caller (no clock here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LOSS_GRACE_S = 30.0
MAX_HOLES = 10_000  # per stream; beyond that the oldest hole is confirmed lost at once


@dataclass(frozen=True, slots=True)
class Observation:
    opened: int = 0  # seqs that became missing with this sample
    late: bool = False
    duplicate: bool = False


@dataclass(slots=True)
class _Hole:
    first: int
    last: int
    since_s: float

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(slots=True)
class _Stream:
    last: int
    holes: list[_Hole] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(h.size for h in self.holes)


class SequenceTracker:
    """Last seq and open holes per stream. Seed it with the last seq stored before a
    restart (`recover`), so that a restart neither reports false losses nor hides real
    ones."""

    def __init__(self, grace_s: float = LOSS_GRACE_S) -> None:
        self.grace_s = grace_s
        self._streams: dict[str, _Stream] = {}

    def recover(self, last: Mapping[str, int]) -> None:
        for name, seq in last.items():
            stream = self._streams.get(name)
            if stream is None:
                self._streams[name] = _Stream(seq)
            else:
                stream.last = max(stream.last, seq)

    def last(self, name: str) -> int | None:
        stream = self._streams.get(name)
        return None if stream is None else stream.last

    def missing(self, name: str) -> int:
        stream = self._streams.get(name)
        return 0 if stream is None else stream.missing

    def observe(self, name: str, seq: int, now_s: float) -> Observation:
        stream = self._streams.get(name)
        if stream is None:
            self._streams[name] = _Stream(seq)
            return Observation()
        if seq == stream.last + 1:
            stream.last = seq
            return Observation()
        if seq > stream.last:
            stream.holes.append(_Hole(stream.last + 1, seq - 1, now_s))
            stream.last = seq
            return Observation(opened=seq - stream.holes[-1].first)
        if _fill(stream.holes, seq):
            return Observation(late=True)
        return Observation(duplicate=True)

    def expire(self, now_s: float) -> dict[str, int]:
        """Close holes older than `grace_s` (or beyond MAX_HOLES): stream -> seqs lost."""
        lost: dict[str, int] = {}
        for name, stream in self._streams.items():
            holes = stream.holes
            count = 0
            while holes and (now_s - holes[0].since_s >= self.grace_s or len(holes) > MAX_HOLES):
                count += holes.pop(0).size
            if count:
                lost[name] = count
        return lost


def _fill(holes: list[_Hole], seq: int) -> bool:
    """Remove `seq` from the hole holding it; False when no hole does."""
    for index, hole in enumerate(holes):
        if hole.first <= seq <= hole.last:
            if hole.first == hole.last:
                del holes[index]
            elif seq == hole.first:
                hole.first += 1
            elif seq == hole.last:
                hole.last -= 1
            else:
                holes.insert(index + 1, _Hole(seq + 1, hole.last, hole.since_s))
                hole.last = seq - 1
            return True
    return False
