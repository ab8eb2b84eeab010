"""Additive aggregates of one machine over one interval (`Agg`): seconds per time bucket,
count deltas, Sigma PRI x count, episode counts. Two adjacent intervals' aggregates added
with `+` are the aggregate of their union; ratios are computed only from sums
(`shopfloor.kpi.oee`). Time in milliseconds (exact integers), counts as floats (a counter
pair cut by a boundary is split in proportion to running time).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

_MS_FIELDS = (
    "pot_ms", "pdot_ms", "unk_ms", "apt_ms", "aust_ms", "l1_ms", "l3_ms", "l1_stopped_ms",
)
_COUNT_FIELDS = (
    "pq", "sq", "pq_unattributed", "sq_unattributed", "pq_unplanned", "sq_unplanned",
    "pq_unknown_product", "sq_unknown_product",
)
_SECONDS_FIELDS = ("nrt_s", "fpt_s", "l5_s", "l6_s")
_EVENT_FIELDS = ("fe", "minor_stops", "wraps", "resets", "jumps", "reset_unknown")
NUMERIC_FIELDS = _MS_FIELDS + _COUNT_FIELDS + _SECONDS_FIELDS + _EVENT_FIELDS


@dataclass(slots=True)
class Agg:
    """Additive aggregate. POT/PDOT/UNK/APT/AUST/L1/L3 in ms (ISO 22400-2 names);
    `l1_stopped_ms`: L1 time in `stopped` (failures, for MTTR). Counts: PQ/SQ attributed
    to PBT_obs; `_unattributed`: pairs spanning UNK; `_unplanned`: counted outside PBT;
    `_unknown_product`: in PQ/SQ, but no ideal cycle time known. `nrt_s` = Sigma PRI*PQ,
    `fpt_s` = Sigma PRI*GQ, `l5_s`/`l6_s` = Sigma PRI*scrap outside/inside startup.
    Events: FE (L1 stopped episodes starting here), minor stops starting here, and
    counter pairs ending here that wrapped, reset, jumped or went back unexplained.
    `orders`: work order -> [parts, scrap] counted while it was set (all counts)."""

    pot_ms: int = 0
    pdot_ms: int = 0
    unk_ms: int = 0
    apt_ms: int = 0
    aust_ms: int = 0
    l1_ms: int = 0
    l3_ms: int = 0
    l1_stopped_ms: int = 0
    pq: float = 0.0
    sq: float = 0.0
    pq_unattributed: float = 0.0
    sq_unattributed: float = 0.0
    pq_unplanned: float = 0.0
    sq_unplanned: float = 0.0
    pq_unknown_product: float = 0.0
    sq_unknown_product: float = 0.0
    nrt_s: float = 0.0
    fpt_s: float = 0.0
    l5_s: float = 0.0
    l6_s: float = 0.0
    fe: int = 0
    minor_stops: int = 0
    wraps: int = 0
    resets: int = 0
    jumps: int = 0
    reset_unknown: int = 0
    orders: dict[str, list[float]] = field(default_factory=dict)

    def add(self, other: Agg) -> Agg:
        """Add `other` into self (in place) and return self. (Spelled out: this is the
        live engine's inner loop; `NUMERIC_FIELDS` lists the same names.)"""
        self.pot_ms += other.pot_ms
        self.pdot_ms += other.pdot_ms
        self.unk_ms += other.unk_ms
        self.apt_ms += other.apt_ms
        self.aust_ms += other.aust_ms
        self.l1_ms += other.l1_ms
        self.l3_ms += other.l3_ms
        self.l1_stopped_ms += other.l1_stopped_ms
        self.pq += other.pq
        self.sq += other.sq
        self.pq_unattributed += other.pq_unattributed
        self.sq_unattributed += other.sq_unattributed
        self.pq_unplanned += other.pq_unplanned
        self.sq_unplanned += other.sq_unplanned
        self.pq_unknown_product += other.pq_unknown_product
        self.sq_unknown_product += other.sq_unknown_product
        self.nrt_s += other.nrt_s
        self.fpt_s += other.fpt_s
        self.l5_s += other.l5_s
        self.l6_s += other.l6_s
        self.fe += other.fe
        self.minor_stops += other.minor_stops
        self.wraps += other.wraps
        self.resets += other.resets
        self.jumps += other.jumps
        self.reset_unknown += other.reset_unknown
        for order, (parts, scrap) in other.orders.items():
            mine = self.orders.setdefault(order, [0.0, 0.0])
            mine[0] += parts
            mine[1] += scrap
        return self

    def __add__(self, other: Agg) -> Agg:
        return self.copy().add(other)

    def copy(self) -> Agg:
        out = Agg(**{name: getattr(self, name) for name in NUMERIC_FIELDS})
        out.orders = {k: list(v) for k, v in self.orders.items()}
        return out

    @property
    def parts_total(self) -> float:
        """Every part counted (attributed or not): what WIP and shift totals use."""
        return self.pq + self.pq_unattributed + self.pq_unplanned

    @property
    def scrap_total(self) -> float:
        return self.sq + self.sq_unattributed + self.sq_unplanned

    def numeric(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in NUMERIC_FIELDS}

    @staticmethod
    def from_numeric(values: dict[str, float]) -> Agg:
        """From stored fields (missing ones are 0); ms fields back to int."""
        kwargs: dict[str, float] = {}
        for f in fields(Agg):
            if f.name in values and values[f.name] is not None:
                v = values[f.name]
                kwargs[f.name] = int(round(v)) if f.name in INT_FIELDS else float(v)
        return Agg(**kwargs)  # type: ignore[arg-type]


INT_FIELDS = frozenset(_MS_FIELDS + _EVENT_FIELDS)


def parts(x: float) -> int:
    """A count of parts as reported (results, records, API, MQTT, CLI): whole parts. Inside,
    sums are fractions (a counter pair cut by a boundary is split in proportion) and stay
    unrounded in rollups so that they add up; they are rounded only on the way out."""
    return int(round(x))


def total(aggs: list[Agg]) -> Agg:
    out = Agg()
    for a in aggs:
        out.add(a)
    return out
