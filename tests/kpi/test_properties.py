"""Property tests on random timelines: the loss invariant, arrival-order independence,
and additivity of window aggregates."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.kpi.aggregate import aggregate, context_ms
from shopfloor.kpi.buckets import Agg, total
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.model import KpiMachineSpec, KpiSettings, Sample
from shopfloor.kpi.oee import compute
from tests.kpi.plants import IDLE, JAM, PLANNED, RUN, SETUP, STOP, Tape, ms, plant

T0 = ms(2026, 11, 25, 5, 50)
SHIFTS = [{"name": "a", "start": "06:00", "end": "07:00",
           "breaks": [{"start": "06:20", "end": "06:25"}]},
          {"name": "b", "start": "07:10", "end": "08:00"}]
PLANT = plant(SHIFTS, counter="uint16")
SPEC = KpiMachineSpec.from_plant(PLANT, "m1")
CAL = ShiftCalendar.of(PLANT)

episode = st.tuples(
    st.sampled_from([RUN, RUN, RUN, STOP, IDLE, JAM, SETUP, PLANNED]),
    st.integers(1, 400),  # steps of 1 s
    st.integers(1, 2),  # product
    st.integers(0, 2),  # parts per step while running
    st.sampled_from([0, 0, 3, 10]),  # scrap every n steps
    st.sampled_from([0, 0, 0, 2, 5, 40, 1500]),  # gap after the episode (steps)
    st.sampled_from([None, "wo1", "wo2"]),
)


def build(episodes: list[tuple]) -> Tape:
    tape = Tape(T0)
    tape.total = 65000  # wraps at 65536 on longer timelines
    for state, steps, product, rate, scrap, gap, wo in episodes:
        tape.product, tape.wo = product, wo
        tape.run(state, steps, parts_per_step=rate if state == RUN else 0,
                 scrap_every=scrap if state == RUN else 0, width=2**16)
        tape.gap(gap)
    tape.emit(RUN)
    return tape


def agg(samples: list[Sample], lo: int, hi: int, bucket_ms: int | None = None) -> Agg:
    return total([b.agg for b in aggregate(SPEC, samples, CAL, lo, hi, bucket_ms)])


def close(a: Agg, b: Agg) -> bool:
    x, y = a.numeric(), b.numeric()
    same = all(math.isclose(x[k], y[k], rel_tol=1e-9, abs_tol=1e-6) for k in x)
    orders = a.orders.keys() == b.orders.keys() and all(
        math.isclose(p, q, abs_tol=1e-6)
        for k in a.orders for p, q in zip(a.orders[k], b.orders[k], strict=True))
    return same and orders


@settings(max_examples=150, deadline=None)
@given(st.lists(episode, min_size=1, max_size=12))
def test_losses_add_up_to_observed_busy_time(episodes: list[tuple]) -> None:
    tape = build(episodes)
    r = compute(agg(tape.samples, T0, tape.t))
    lost = r.fpt_s + r.l1_s + r.l2_s + r.l3_s + r.l4_s + r.l5_s + r.l6_s
    assert math.isclose(lost, r.pbt_obs_s, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(r.rt_s, r.pbt_obs_s - r.aust_s - r.l1_s, abs_tol=1e-6)
    if r.oee is not None and r.availability and r.performance and r.quality is not None:
        assert math.isclose(r.oee, r.availability * r.performance * r.quality, rel_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(episode, min_size=1, max_size=10), st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(episodes: list[tuple], rnd: random.Random) -> None:
    tape = build(episodes)
    arrived = tape.samples + rnd.sample(tape.samples, len(tape.samples) // 5)
    rnd.shuffle(arrived)
    assert agg(arrived, T0, tape.t) == agg(tape.samples, T0, tape.t)


@settings(max_examples=100, deadline=None)
@given(st.lists(episode, min_size=1, max_size=10), st.floats(0.0, 1.0))
def test_split_windows_sum_to_the_whole(episodes: list[tuple], where: float) -> None:
    tape = build(episodes)
    lo, hi = T0 - 30_000, tape.t + 30_000
    cut = lo + int((hi - lo) * where)
    whole = agg(tape.samples, lo, hi)
    assert close(agg(tape.samples, lo, cut) + agg(tape.samples, cut, hi), whole)
    assert close(agg(tape.samples, lo, hi, bucket_ms=60_000), whole)


@settings(max_examples=60, deadline=None)
@given(st.lists(episode, min_size=3, max_size=10), st.floats(0.1, 0.9))
def test_a_window_needs_only_its_context(episodes: list[tuple], where: float) -> None:
    """A minute computed from the samples within the context margin (plus the nearest one
    outside on each side) equals the minute computed from the whole history: what lets
    the live engine and the on-demand path work on a slice."""
    tape = build(episodes)
    start = T0 + int((tape.t - T0) * where) // 60_000 * 60_000
    end = start + 60_000
    margin = context_ms(SPEC, KpiSettings())
    before = [s for s in tape.samples if s.ts_ms < start - margin][-1:]
    after = [s for s in tape.samples if s.ts_ms >= end + margin][:1]
    near = before + [s for s in tape.samples if start - margin <= s.ts_ms < end + margin]
    near += after
    data_end = tape.samples[-1].ts_ms
    full = aggregate(SPEC, tape.samples, CAL, start, end, data_end_ms=data_end)[0].agg
    part = aggregate(SPEC, near, CAL, start, end, data_end_ms=data_end)[0].agg
    assert close(full, part)


@settings(max_examples=30, deadline=None)
@given(st.lists(episode, min_size=1, max_size=8), st.randoms(use_true_random=False),
       st.integers(1, 200))
def test_live_minutes_equal_on_demand(episodes: list[tuple], rnd: random.Random,
                                      batch: int) -> None:
    """Samples arriving in batches, some late (up to 15 min), recomputed after each batch:
    every minute the live state holds equals the minute computed from all samples."""
    from shopfloor.kpi.livestate import MachineLive

    tape = build(episodes)
    arrival = sorted(tape.samples, key=lambda s: s.ts_ms + rnd.choice([0] * 9 + [900_000]))
    live = MachineLive(SPEC, CAL, KpiSettings())
    arrived: list[Sample] = []

    def older(lo: int, hi: int) -> list[Sample]:  # what the store holds, as store.samples
        got = sorted((s for s in arrived if s.ts_ms < hi), key=lambda s: s.ts_ms)
        return [s for s in got if s.ts_ms < lo][-1:] + [s for s in got if s.ts_ms >= lo]

    for i in range(0, len(arrival), batch):
        for s in arrival[i:i + batch]:
            arrived.append(s)
            live.add(s)
        live.recompute(max(s.ts_ms for s in arrived), older)
    last = live.last_ts
    for t, parts in live.minutes.items():
        full = aggregate(SPEC, tape.samples, CAL, t, t + 60_000)[0].agg
        cached = total([p[2] for p in parts])
        assert close(cached, full), (t - T0) / 60_000
    assert last == tape.samples[-1].ts_ms
