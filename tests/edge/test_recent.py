"""A stream's recent sample times (edge/recent.py): the same milliseconds as the
straightforward model (a deque of the last N times and a set of them), in 8 bytes a
time instead of ~73 (at 1,024 times for each of 4,000 machines: ~32 MiB, not ~290)."""

from __future__ import annotations

import tracemalloc
from collections import deque

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shopfloor.edge import recent as recent_module
from shopfloor.edge.recent import RecentTimes
from shopfloor.edge.stream import NO_FLOOR

T0_MS = 1_796_000_000_000


def reference(stamps: list[int], size: int, floor: int) -> list[int]:
    """The milliseconds the samples get, kept the straightforward way."""
    recent: deque[int] = deque(maxlen=size)
    taken: set[int] = set()
    out = []
    for ms in stamps:
        if ms <= floor or ms in taken:
            ms = max(ms, floor) + 1
            while ms in taken:
                ms += 1
        if len(recent) == size:
            taken.discard(recent[0])
        recent.append(ms)
        taken.add(ms)
        out.append(ms)
    return out


# Offsets around T0 (ms), negative ones too; a few sizes, so the ring wraps.
_STAMPS = st.lists(st.integers(-40, 40).map(lambda d: T0_MS + d)
                   | st.integers(-2**62, 2**62), max_size=60)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(_STAMPS, st.integers(1, 9), st.sampled_from([NO_FLOOR, T0_MS - 5, T0_MS, T0_MS + 3]))
@example([T0_MS, T0_MS, T0_MS, T0_MS + 1, T0_MS - 1, T0_MS], 2, NO_FLOOR)  # repeats, wraps
@example([T0_MS - 10, T0_MS - 10, T0_MS + 256], 4, T0_MS)  # at or before a restart floor
def test_the_ring_gives_the_same_milliseconds_as_the_deque_and_set(
    stamps: list[int], size: int, floor: int
) -> None:
    recent = RecentTimes(size, latest=floor)  # a restarted stream: floor = latest stored
    got = [recent.take(ms, floor) for ms in stamps]
    assert got == reference(stamps, size, floor)
    assert len(recent) == min(size, len(stamps))
    assert recent.latest == max([floor, *got])


def test_only_whole_times_match() -> None:
    """The ring is searched as bytes: a time whose bytes straddle two stored times (at
    no 8-byte boundary) is not taken."""
    recent = RecentTimes(4, latest=NO_FLOOR)
    a, b = 0x0102030405060708, 0x7FFFFFFF00000001  # the straddling one is before b
    for ms in (a, b):
        recent.take(ms, NO_FLOOR)
    straddling = int.from_bytes(a.to_bytes(8, "little")[4:] + b.to_bytes(8, "little")[:4],
                                "little")
    assert a in recent and b in recent and straddling not in recent
    assert recent.take(straddling, NO_FLOOR) == straddling


def test_a_full_ring_holds_eight_bytes_a_time() -> None:
    size = 1024
    tracemalloc.start()
    try:
        recent = RecentTimes(size, latest=NO_FLOOR)
        for k in range(3 * size):
            recent.take(T0_MS + 1000 * k, NO_FLOOR)
        # what recent.py's lines hold (the process total also counts other threads',
        # e.g. the test worker's messaging: a flaky 21 KB once)
        mine = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, recent_module.__file__)])
        held = sum(stat.size for stat in mine.statistics("filename"))
    finally:
        tracemalloc.stop()
    assert len(recent) == size
    assert 8 * size <= held <= 8 * size * 1.15, held  # the array's own growth margin


def test_a_ring_needs_room_for_one_time() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RecentTimes(0, latest=NO_FLOOR)
