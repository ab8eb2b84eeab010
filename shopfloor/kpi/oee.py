"""Ratios from an additive aggregate (docs/oee.md "Ratios"): A, P, Q, OEE, the six big
losses, MTBF/MTTR, coverage and flags, with every null rule. Nothing here is averaged:
feed it the sum of the aggregates of the window."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from shopfloor.kpi.buckets import Agg, parts
from shopfloor.kpi.model import KpiSettings


class Flag(StrEnum):
    NOT_SCHEDULED = "not_scheduled"  # PBT_obs = 0
    NO_DATA = "no_data"  # coverage < 0.80: KPIs null
    DEGRADED = "degraded"  # coverage < 0.95
    IDEAL_CYCLE_TIME_SUSPECT = "ideal_cycle_time_suspect"  # P > 1.02 over >= 100 parts
    RESET = "reset"
    JUMP = "jump"
    RESET_UNKNOWN = "reset_unknown"
    WRAP = "wrap"
    UNATTRIBUTED = "unattributed"  # parts counted across a data gap
    UNKNOWN_PRODUCT = "unknown_product"  # parts with no ideal cycle time


@dataclass(frozen=True, slots=True)
class OeeResult:
    """KPIs of one machine over one window. Times in seconds; ratios unrounded (computed
    from the unrounded sums), None when undefined; counts of parts in whole parts. Names
    after ISO 22400-2 (see docs/oee.md)."""

    pot_s: float
    pdot_s: float
    pbt_s: float
    unk_s: float
    pbt_obs_s: float
    coverage: float | None
    apt_s: float
    aust_s: float
    rt_s: float
    pq: int
    sq: int
    gq: int
    nrt_s: float
    fpt_s: float
    availability: float | None
    performance: float | None
    quality: float | None
    quality_count: float | None  # GQ / PQ
    oee: float | None
    l1_s: float
    l2_s: float
    l3_s: float
    l4_s: float
    l5_s: float
    l6_s: float
    fe: int
    minor_stops: int
    mtbf_s: float | None
    mttr_s: float | None
    pq_unattributed: int
    sq_unattributed: int
    pq_unplanned: int
    sq_unplanned: int
    parts_total: int
    scrap_total: int
    flags: tuple[Flag, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["flags"] = [str(f) for f in self.flags]
        return out


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


def _ratios(agg: Agg, pbt_obs: float, rt: float) -> tuple[float | None, ...]:
    """(A, P, Q, GQ/PQ, OEE) with the null rules of OEE.md."""
    if pbt_obs <= 0:
        return None, None, None, None, None
    availability = rt / pbt_obs
    if rt <= 0:
        return 0.0, None, _div(agg.fpt_s, agg.nrt_s), _div(agg.pq - agg.sq, agg.pq), 0.0
    if agg.pq <= 0:
        return availability, 0.0, None, None, 0.0
    performance = agg.nrt_s / rt
    quality = _div(agg.fpt_s, agg.nrt_s)
    return availability, performance, quality, (agg.pq - agg.sq) / agg.pq, agg.fpt_s / pbt_obs


def _flags(agg: Agg, coverage: float | None, p: float | None, s: KpiSettings) -> list[Flag]:
    flags = []
    if coverage is None or agg.pot_ms - agg.pdot_ms - agg.unk_ms <= 0:
        flags.append(Flag.NOT_SCHEDULED)
    elif coverage < s.coverage_null:
        flags.append(Flag.NO_DATA)
    elif coverage < s.coverage_degraded:
        flags.append(Flag.DEGRADED)
    if p is not None and p > s.p_suspect and agg.pq >= s.p_suspect_min_parts:
        flags.append(Flag.IDEAL_CYCLE_TIME_SUSPECT)
    for flag, n in ((Flag.RESET, agg.resets), (Flag.JUMP, agg.jumps),
                    (Flag.RESET_UNKNOWN, agg.reset_unknown), (Flag.WRAP, agg.wraps),
                    (Flag.UNATTRIBUTED, agg.pq_unattributed + agg.sq_unattributed),
                    (Flag.UNKNOWN_PRODUCT, agg.pq_unknown_product + agg.sq_unknown_product)):
        if n:
            flags.append(flag)
    return flags


def compute(agg: Agg, settings: KpiSettings | None = None) -> OeeResult:
    """KPIs from the summed aggregate of a window."""
    s = settings or KpiSettings()
    pot, pdot, unk = agg.pot_ms / 1000, agg.pdot_ms / 1000, agg.unk_ms / 1000
    pbt = pot - pdot
    pbt_obs = pbt - unk
    apt, aust, l1, l3 = agg.apt_ms / 1000, agg.aust_ms / 1000, agg.l1_ms / 1000, agg.l3_ms / 1000
    rt = apt + l3
    coverage = _div(pbt_obs, pbt)
    a, p, q, q_count, oee = _ratios(agg, pbt_obs, rt)
    flags = _flags(agg, coverage, p, s)
    if Flag.NO_DATA in flags:
        a = p = q = q_count = oee = None
    return OeeResult(
        pot_s=pot, pdot_s=pdot, pbt_s=pbt, unk_s=unk, pbt_obs_s=pbt_obs, coverage=coverage,
        apt_s=apt, aust_s=aust, rt_s=rt, pq=parts(agg.pq), sq=parts(agg.sq),
        gq=parts(agg.pq) - parts(agg.sq),
        nrt_s=agg.nrt_s, fpt_s=agg.fpt_s,
        availability=a, performance=p, quality=q, quality_count=q_count, oee=oee,
        l1_s=l1, l2_s=aust, l3_s=l3, l4_s=apt - agg.nrt_s, l5_s=agg.l5_s, l6_s=agg.l6_s,
        fe=agg.fe, minor_stops=agg.minor_stops,
        mtbf_s=_div(apt + aust, agg.fe), mttr_s=_div(agg.l1_stopped_ms / 1000, agg.fe),
        pq_unattributed=parts(agg.pq_unattributed), sq_unattributed=parts(agg.sq_unattributed),
        pq_unplanned=parts(agg.pq_unplanned), sq_unplanned=parts(agg.sq_unplanned),
        parts_total=parts(agg.parts_total), scrap_total=parts(agg.scrap_total),
        flags=tuple(flags),
    )
