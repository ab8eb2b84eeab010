"""Counter differencing (docs/oee.md "Counters"): cumulative unsigned counters of width M,
consecutive readings v0 -> v1 over dt seconds, Dmax = ceil(1.5 * dt / PRI_min) + 10.

The caller sorts readings by timestamp and drops duplicates first (see `timeline.clean`);
here a reading that goes backwards is a wrap or a reset, never a late sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class PairFlag(StrEnum):
    OK = "ok"
    WRAP = "wrap"
    RESET = "reset"
    JUMP = "jump"  # v1 - v0 > Dmax: delta 0, rebase
    RESET_UNKNOWN = "reset_unknown"  # went back, neither wrap nor reset: delta 0


@dataclass(frozen=True, slots=True)
class Pair:
    """Consecutive readings of one counter: `delta` parts over [t0_ms, t1_ms)."""

    t0_ms: int
    t1_ms: int
    delta: int
    flag: PairFlag


def d_max(dt_s: float, pri_min_s: float | None, width: int) -> int:
    """Largest plausible increment over dt_s seconds. Without any ideal cycle time the
    machine's speed is unknown: half the counter's range."""
    if pri_min_s is None:
        return width // 2
    return math.ceil(1.5 * dt_s / pri_min_s) + 10


def delta(v0: int, v1: int, dmax: int, width: int) -> tuple[int, PairFlag]:
    """The increment from v0 to v1 by the rules of OEE.md."""
    diff = v1 - v0
    if 0 <= diff <= dmax:
        return diff, PairFlag.OK
    if diff > dmax:
        return 0, PairFlag.JUMP
    if diff + width <= dmax:
        return diff + width, PairFlag.WRAP
    if v1 <= dmax:
        return v1, PairFlag.RESET
    return 0, PairFlag.RESET_UNKNOWN


def as_count(value: object, width: int) -> int | None:
    """A counter reading as an int in [0, width), or None when it is not a count."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    count = round(value)
    return count if 0 <= count < width else None


def pairs(readings: list[tuple[int, int]], pri_min_s: float | None, width: int) -> list[Pair]:
    """Pairs of consecutive (ts_ms, value) readings, sorted and unique by timestamp.
    Pairs that count nothing and raise no flag (a standing machine) are left out."""
    out = []
    for (t0, v0), (t1, v1) in zip(readings, readings[1:], strict=False):
        diff = v1 - v0
        if diff == 0:
            continue
        if 0 < diff <= 11:  # fast path: Dmax is at least 11 for any dt > 0
            out.append(Pair(t0, t1, diff, PairFlag.OK))
            continue
        dmax = d_max((t1 - t0) / 1000.0, pri_min_s, width)
        d, flag = delta(v0, v1, dmax, width)
        out.append(Pair(t0, t1, d, flag))
    return out
