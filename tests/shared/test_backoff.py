"""The one backoff of every component: capped, jittered, restartable."""

from __future__ import annotations

import itertools
import random

import pytest

from shopfloor.shared.backoff import Backoff


def test_delays_double_up_to_the_cap_with_equal_jitter() -> None:
    backoff = Backoff(0.2, 5.0, random.Random(7))
    delays = list(itertools.islice(backoff.delays(), 10))
    ceilings = [min(5.0, 0.2 * 2**i) for i in range(10)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_delays_restart_from_the_base() -> None:
    backoff = Backoff(1.0, 8.0, random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    assert next(backoff.delays()) <= 1.0


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="base_s"):
        Backoff(2.0, 1.0)
