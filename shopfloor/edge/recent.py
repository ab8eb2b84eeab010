"""A stream's recent sample times (`edge/stream.py`, `_free_millisecond`): the last N
milliseconds its samples took, so that a new sample takes none of them."""

from __future__ import annotations

import sys
from array import array


class RecentTimes:
    """The last `size` sample times (ms since 1970) of one stream, the oldest dropped
    first, in a ring of 64-bit integers: 8 bytes a time. (A deque and a set of int
    objects took ~73 bytes a time: 1,024 times for each of 4,000 machines were ~290 MiB,
    reached ~17 minutes after start at 1 Hz.)

    `latest` is the largest time taken (at start: the stream's latest stored one). A
    sample later than it, the usual case, takes its own time without a look-up."""

    __slots__ = ("latest", "_next", "_ring", "_size")

    def __init__(self, size: int, latest: int) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        self.latest = latest
        self._size = size
        self._ring = array("q")  # grows to `size`, then wraps
        self._next = 0

    def take(self, ms: int, floor: int) -> int:
        """The millisecond a sample stamped `ms` gets, now taken: `ms`, unless it is at
        or before `floor` (at most `latest`) or a recent sample took it; then the next
        free one after max(ms, floor)."""
        if ms > self.latest:
            self.latest = ms
        else:
            if ms <= floor or ms in self:
                ms = max(ms, floor) + 1
                while ms in self:
                    ms += 1
            self.latest = max(self.latest, ms)
        ring = self._ring
        if len(ring) < self._size:
            ring.append(ms)
        else:
            ring[self._next] = ms
            self._next = (self._next + 1) % self._size
        return ms

    def __contains__(self, ms: int) -> bool:
        """Whether one of the recent samples took `ms`: a search of the ring's bytes
        (memchr speed; `ms in array` makes an int object of every element), counting
        only matches on an 8-byte boundary."""
        if ms > self.latest:
            return False
        data = self._ring.tobytes()
        needle = ms.to_bytes(8, sys.byteorder, signed=True)  # the array's own layout
        at = data.find(needle)
        while at > 0 and at % 8:
            at = data.find(needle, at + 1)
        return at >= 0

    def __len__(self) -> int:
        return len(self._ring)
