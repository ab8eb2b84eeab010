"""The one admission rule for telemetry, applied at the edge of every component that
consumes it (collector, live KPI engine, API live view), so that one message can never
make any of them do unbounded work:

* time: a sample stamped more than `admission.max_ahead_s` ahead of the receiver's clock
  (it would freeze "newest sample wins" views and drive event-time work into the future),
  or more than `admission.max_age_s` behind it, is refused with a reason;
* values: only the machine's own points are taken; unknown keys are dropped and counted
  (a plant has a bounded set of points, a message may carry any number of keys).

Pure: the caller passes its clock reading (docs/mqtt-contract.md, "Admission")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from shopfloor.shared.plant import Plant

V = TypeVar("V")


class Refusal(StrEnum):
    """Why a sample's time is refused (a metric label: small and fixed)."""

    FUTURE = "future_ts"
    TOO_OLD = "old_ts"


@dataclass(frozen=True, slots=True)
class TimeRefused:
    reason: Refusal
    detail: str


def _iso(ms: int) -> str:
    try:
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return f"{ms} ms"
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TimeAdmission:
    """Bounds on a sample's timestamp relative to the receiver's clock (both in ms)."""

    max_ahead_ms: int
    max_age_ms: int

    @classmethod
    def of(cls, plant: Plant) -> TimeAdmission:
        rule = plant.admission
        return cls(int(rule.max_ahead_s * 1000), int(rule.max_age_s * 1000))

    def ahead(self, ts_ms: int, now_ms: int, what: str = "ts") -> TimeRefused | None:
        """Why a time stamped `ts_ms` is too far ahead of `now_ms`; None when it is not.
        For state messages (a machine may stay in one state longer than any age bound,
        but no state begins in the future)."""
        if ts_ms > now_ms + self.max_ahead_ms:
            return TimeRefused(Refusal.FUTURE, (
                f"{what} {_iso(ts_ms)} is {(ts_ms - now_ms) / 1000:.0f} s ahead of the "
                f"receiver's clock {_iso(now_ms)} (admission.max_ahead_s "
                f"{self.max_ahead_ms / 1000:g})"))
        return None

    def refuse(self, ts_ms: int, now_ms: int) -> TimeRefused | None:
        """Why a sample stamped `ts_ms` is not taken at `now_ms`; None when it is."""
        ahead = self.ahead(ts_ms, now_ms)
        if ahead is not None:
            return ahead
        if ts_ms < now_ms - self.max_age_ms:
            return TimeRefused(Refusal.TOO_OLD, (
                f"ts {_iso(ts_ms)} is {(now_ms - ts_ms) / 1000:.0f} s behind the receiver's"
                f" clock {_iso(now_ms)} (admission.max_age_s {self.max_age_ms / 1000:g})"))
        return None


def known_values(values: Mapping[str, V], points: frozenset[str] | Mapping[str, object]
                 ) -> tuple[Mapping[str, V], int]:
    """`values` restricted to the machine's `points`, and how many keys were dropped.
    The common case (every key known) returns `values` itself, without a copy."""
    unknown = sum(1 for name in values if name not in points)
    if not unknown:
        return values, 0
    return {k: v for k, v in values.items() if k in points}, unknown


def point_names(plant: Plant) -> dict[str, frozenset[str]]:
    """Per machine id, the names of its points (what `known_values` keeps)."""
    return {mid: frozenset(p.name for p in m.points) for mid, m in plant.machines.items()}
