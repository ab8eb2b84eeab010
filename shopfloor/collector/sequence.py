"""Pure loss accounting: follows `seq` per machine stream.

* `seq == last + 1`: in order.
* a jump forward opens a **hole** of the seqs in between: they are *missing* (a gauge),
  not yet lost — across a broker restart or a session redelivery, messages can arrive out
  of order. A hole still open `grace_s` seconds later is confirmed **lost**.
* a seq inside an open hole is **late**: it fills the hole (not lost, not a duplicate).
  A seq inside a range already confirmed lost is late too, and *refills* it: it is taken
  back from the lost count (the last `MAX_LOST_RANGES` lost ranges of a stream are kept
  for this).
* any other seq at or below the last one is a **duplicate** (the collector still writes
  it: same series and timestamp overwrite, so it is harmless).
* a **restart** begins a fresh stream: a new `epoch` (the edge started a new outbox), or
  a seq more than `MAX_SEQ_JUMP` away from the last one (seq = 2^63-1, a reset counter).
  The seqs between are neither lost nor duplicates. The stream it replaces is kept
  (one per machine), so a single stray seq followed by the old stream switches back
  instead of counting the old stream's samples as duplicates, and late messages of the
  previous epoch are still accounted in their own stream.

Times are monotonic seconds passed in by the caller (no clock here)."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

LOSS_GRACE_S = 30.0
MAX_HOLES = 10_000  # per stream; beyond that the oldest hole is confirmed lost at once
MAX_LOST_RANGES = 1_000  # per stream; lost ranges older than these are not refilled
MAX_SEQ_JUMP = 10_000_000
"""A seq further than this from the last one is a new stream, not a gap or a repeat
(at 100 samples/s per machine this is more than a day of samples)."""


@dataclass(frozen=True, slots=True)
class Observation:
    opened: int = 0  # seqs that became missing with this sample
    late: bool = False
    refilled: bool = False  # late, and its seq had been counted lost already
    duplicate: bool = False
    restarted: bool = False  # the first sample of a new stream (new epoch or seq jump)


IN_ORDER = Observation()
"""What an in-order sample observes (one instance: the hot path tests it by identity)."""


@dataclass(slots=True)
class _Range:
    first: int
    last: int
    since_s: float = 0.0

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(slots=True)
class _Stream:
    last: int
    epoch: int | None = None
    holes: list[_Range] = field(default_factory=list)
    lost: list[_Range] = field(default_factory=list)  # confirmed lost, may still be refilled

    @property
    def missing(self) -> int:
        return sum(h.size for h in self.holes)

    def near(self, seq: int, epoch: int | None) -> bool:
        """True when `seq` belongs to this stream (same epoch, within MAX_SEQ_JUMP)."""
        return epoch == self.epoch and abs(seq - self.last) <= MAX_SEQ_JUMP


class SequenceTracker:
    """Last seq and open holes per stream. Seed it with the last seq stored before a
    restart (`recover`), so that a restart neither reports false losses nor hides real
    ones."""

    def __init__(self, grace_s: float = LOSS_GRACE_S) -> None:
        self.grace_s = grace_s
        self._streams: dict[str, _Stream] = {}
        self._previous: dict[str, _Stream] = {}  # the stream a restart replaced
        self._abandoned: dict[str, int] = {}  # open holes of streams no longer followed

    def recover(self, last: Mapping[str, int], epochs: Mapping[str, int] | None = None) -> None:
        for name, seq in last.items():
            epoch = (epochs or {}).get(name)
            stream = self._streams.get(name)
            if stream is None or not stream.near(seq, epoch):
                self._streams[name] = _Stream(seq, epoch)
            else:
                stream.last = max(stream.last, seq)

    def last(self, name: str) -> int | None:
        stream = self._streams.get(name)
        return None if stream is None else stream.last

    def missing(self, name: str) -> int:
        return sum(s.missing for s in (self._streams.get(name), self._previous.get(name)) if s)

    def observe(self, name: str, seq: int, now_s: float, epoch: int | None = None) -> Observation:
        stream = self._streams.get(name)
        if stream is None:
            self._streams[name] = _Stream(seq, epoch)
            return Observation()
        if seq == stream.last + 1 and epoch == stream.epoch:  # the usual case, first
            stream.last = seq
            return IN_ORDER
        if not stream.near(seq, epoch):
            previous = self._previous.get(name)
            if previous is None or not previous.near(seq, epoch):
                self._restart(name, stream, _Stream(seq, epoch))
                return Observation(restarted=True)
            if previous.epoch == stream.epoch:  # a stray seq, then the old stream again
                self._streams[name], self._previous[name] = previous, stream
            stream = previous
        return _observe(stream, seq, now_s)

    def _restart(self, name: str, old: _Stream, new: _Stream) -> None:
        dropped = self._previous.get(name)
        if dropped is not None and dropped.holes:
            self._abandoned[name] = self._abandoned.get(name, 0) + dropped.missing
        self._previous[name] = old
        self._streams[name] = new

    def expire(self, now_s: float) -> dict[str, int]:
        """Close holes older than `grace_s` (or beyond MAX_HOLES): stream -> seqs lost.
        Open holes of a stream that two restarts left behind count as lost here too."""
        lost, self._abandoned = self._abandoned, {}
        for streams in (self._streams, self._previous):
            for name, stream in streams.items():
                count = _expire(stream, now_s, self.grace_s)
                if count:
                    lost[name] = lost.get(name, 0) + count
        return lost


def _observe(stream: _Stream, seq: int, now_s: float) -> Observation:
    if seq == stream.last + 1:
        stream.last = seq
        return IN_ORDER
    if seq > stream.last:
        stream.holes.append(_Range(stream.last + 1, seq - 1, now_s))
        stream.last = seq
        return Observation(opened=seq - stream.holes[-1].first)
    if _fill(stream.holes, seq):
        return Observation(late=True)
    if _fill(stream.lost, seq):
        return Observation(late=True, refilled=True)
    return Observation(duplicate=True)


def _expire(stream: _Stream, now_s: float, grace_s: float) -> int:
    holes = stream.holes
    count = 0
    while holes and (now_s - holes[0].since_s >= grace_s or len(holes) > MAX_HOLES):
        hole = holes.pop(0)
        count += hole.size
        stream.lost.append(hole)
    del stream.lost[:-MAX_LOST_RANGES]
    return count


def _fill(ranges: list[_Range], seq: int) -> bool:
    """Remove `seq` from the range holding it; False when no range does. `ranges` are
    disjoint and in ascending order (holes open, and expire, in seq order)."""
    index = bisect.bisect_right(ranges, seq, key=_first) - 1
    if index < 0 or seq > ranges[index].last:
        return False
    hole = ranges[index]
    if hole.first == hole.last:
        del ranges[index]
    elif seq == hole.first:
        hole.first += 1
    elif seq == hole.last:
        hole.last -= 1
    else:
        ranges.insert(index + 1, _Range(seq + 1, hole.last, hole.since_s))
        hole.last = seq - 1
    return True


def _first(hole: _Range) -> int:
    return hole.first
