"""Hand-computed cases for the pure engine: samples -> aggregates -> KPIs."""

from __future__ import annotations

import random
from dataclasses import fields

import pytest

from shopfloor.kpi.aggregate import aggregate
from shopfloor.kpi.buckets import NUMERIC_FIELDS, Agg, total
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.model import KpiMachineSpec, KpiSettings, Sample
from shopfloor.kpi.oee import Flag, OeeResult, compute
from shopfloor.shared.plant import Plant
from tests.kpi.plants import IDLE, JAM, PLANNED, RUN, SETUP, STOP, Tape, ms, plant

T0 = ms(2026, 11, 25, 6)
H = 3_600_000


def run(p: Plant, samples: list[Sample], lo: int, hi: int, bucket_ms: int | None = None,
        data_end_ms: int | None = None, machine: str = "m1") -> tuple[Agg, OeeResult]:
    buckets = aggregate(KpiMachineSpec.from_plant(p, machine), samples, ShiftCalendar.of(p),
                        lo, hi, bucket_ms, data_end_ms=data_end_ms)
    agg = total([b.agg for b in buckets])
    return agg, compute(agg)


def test_oee_com_vector() -> None:
    # planned 420 min, stops 47 min, ideal cycle 1 s, 19 271 produced, 423 rejected.
    tape = Tape(T0)
    tape.run(STOP, 47 * 60)
    running = 373 * 60
    for i in range(running):
        tape.emit(RUN)
        tape.t += 1000
        tape.total = round((i + 1) * 19271 / running)
        tape.reject = round((i + 1) * 423 / running)
    tape.emit(RUN)
    _, r = run(plant(), tape.samples, T0, T0 + 420 * 60_000)
    assert (r.pq, r.sq) == (19271, 423)
    assert r.availability == pytest.approx(0.8881, abs=5e-5)
    assert r.performance == pytest.approx(0.8611, abs=5e-5)
    assert r.quality == pytest.approx(0.9780, abs=5e-5)
    assert r.quality_count == pytest.approx(0.9780, abs=5e-5)
    assert r.oee == pytest.approx(0.7479, abs=5e-5)
    assert (r.l1_s, r.fe, r.mttr_s) == (47 * 60, 1, 47 * 60)
    assert r.mtbf_s == 373 * 60


def test_sixteen_bit_wrap_counts_through() -> None:
    tape = Tape(T0)
    tape.total = 65530
    tape.run(RUN, 11, parts_per_step=1, width=2**16)  # 65530 .. 65535, 0 .. 4
    agg, r = run(plant(counter="uint16"), tape.samples, T0, T0 + 10_000)
    assert tape.samples[-1].values["total"] == 4
    assert (agg.pq, agg.wraps) == (10, 1)
    assert Flag.WRAP in r.flags


def test_reset_during_a_stop() -> None:
    tape = Tape(T0)
    tape.total = 5000
    tape.run(RUN, 10, parts_per_step=1)  # 5000 -> 5010
    tape.run(JAM, 5)
    tape.total = 3  # counter reset by the PLC while the machine stood
    tape.run(JAM, 5)
    tape.run(RUN, 10, parts_per_step=1)
    agg, r = run(plant(), tape.samples, T0, tape.t)
    # 10 while running, 3 counted at the reset (credited to the stop), 9 after
    # (the 10th increment happens after the last sample).
    assert agg.resets == 1 and Flag.RESET in r.flags
    assert agg.pq == 10 + 3 + 9
    assert (agg.apt_ms, agg.l3_ms) == (20_000, 10_000)


def test_data_gap_is_unknown_and_its_pair_unattributed() -> None:
    tape = Tape(T0)
    tape.run(RUN, 100, parts_per_step=1)
    tape.total += 50  # 50 parts made while the edge was cut off
    tape.gap(60)
    tape.run(RUN, 40, parts_per_step=1)
    agg, r = run(plant(), tape.samples, T0, T0 + 200_000, data_end_ms=T0 + 200_000)
    # Samples at 0..99 s and 160..199 s. [99, 160) is a 61 s gap > 3 s: UNK. The tail
    # after 199 s holds 1 s (to the window end at 200 s).
    assert agg.unk_ms == 61_000
    assert agg.apt_ms == 139_000
    assert agg.pq_unattributed == 51  # the pair 99 s -> 160 s: 1 + 50 parts
    assert agg.pq == 99 + 39
    assert r.coverage == pytest.approx(139 / 200)
    assert r.availability is None and Flag.NO_DATA in r.flags
    assert r.parts_total == 189


def test_out_of_order_and_duplicate_samples() -> None:
    tape = Tape(T0)
    tape.run(RUN, 50, parts_per_step=2, scrap_every=7)
    tape.run(JAM, 30)
    tape.run(RUN, 50, parts_per_step=2)
    shuffled = list(tape.samples) + random.Random(4).sample(tape.samples, 40)
    random.Random(5).shuffle(shuffled)
    a, _ = run(plant(), tape.samples, T0, tape.t)
    b, _ = run(plant(), shuffled, T0, tape.t)
    assert a == b
    assert a.pq == 49 * 2 + 2 + 49 * 2 and a.resets == 0 and a.reset_unknown == 0


def test_product_changeover() -> None:
    # A (1 s/part) for 100 s at 1 part/s, setup 60 s, B (2 s/part) 100 s at 1 part/2 s.
    tape = Tape(T0, product=1)
    tape.run(RUN, 100, parts_per_step=1)
    tape.product = 2
    tape.run(SETUP, 60)
    for _ in range(50):
        tape.run(RUN, 1, parts_per_step=1)
        tape.run(RUN, 1)
    tape.emit(RUN)
    agg, r = run(plant(), tape.samples, T0, T0 + 260_000)
    assert agg.pq == 100 + 50
    assert agg.nrt_s == pytest.approx(100 * 1.0 + 50 * 2.0)
    assert (r.aust_s, r.apt_s) == (60, 200)
    assert r.performance == pytest.approx(200 / 200)


def test_window_cuts_an_episode_and_a_counter_pair() -> None:
    # Poll 5 s. A 300 s jam cut after 60 s is still an unplanned stop (L1), not minor.
    p = plant(poll_s=5.0)
    tape = Tape(T0, step_ms=5000)
    tape.run(RUN, 4, parts_per_step=5)
    tape.run(JAM, 60)
    tape.run(RUN, 4, parts_per_step=5)
    tape.emit(RUN)
    cut = T0 + 20_000 + 60_000
    left, _ = run(p, tape.samples, T0, cut)
    right, _ = run(p, tape.samples, cut, tape.t)
    whole, _ = run(p, tape.samples, T0, tape.t)
    assert (left.l1_ms, left.l3_ms, left.fe) == (60_000, 0, 1)
    assert (right.l1_ms, right.fe) == (240_000, 0)
    assert left + right == whole
    # The pair 0 s -> 5 s (5 parts) cut at 2 s: split 2:3 by running seconds.
    a, _ = run(p, tape.samples, T0, T0 + 2000)
    b, _ = run(p, tape.samples, T0 + 2000, T0 + 5000)
    assert (a.pq, b.pq) == (pytest.approx(2.0), pytest.approx(3.0))


def test_minor_stop_decided_by_whole_episode() -> None:
    tape = Tape(T0)
    tape.run(RUN, 60, parts_per_step=1)
    tape.run(IDLE, 90)  # 90 s < 120 s: minor
    tape.run(RUN, 60, parts_per_step=1)
    cut = T0 + 100_000
    left, _ = run(plant(), tape.samples, T0, cut)
    right, _ = run(plant(), tape.samples, cut, tape.t)
    assert (left.l3_ms, right.l3_ms, left.l1_ms + right.l1_ms) == (40_000, 50_000, 0)
    assert (left.minor_stops, right.minor_stops) == (1, 0)


def test_zero_planned_time_is_all_null() -> None:
    p = plant([{"name": "early", "start": "06:00", "end": "14:00"}])
    tape = Tape(ms(2026, 11, 25, 20))
    tape.run(RUN, 100, parts_per_step=1)
    agg, r = run(p, tape.samples, tape.samples[0].ts_ms, tape.t)
    assert agg.pot_ms == 0 and agg.pq_unplanned == 99
    assert (r.availability, r.performance, r.quality, r.oee, r.coverage) == (None,) * 5
    assert Flag.NOT_SCHEDULED in r.flags


def test_performance_above_one_is_kept_and_flagged() -> None:
    tape = Tape(T0, product=2)  # ideal 2 s/part, but it makes 1 part/s
    tape.run(RUN, 201, parts_per_step=1)
    _, r = run(plant(), tape.samples, T0, T0 + 200_000)
    assert r.performance == pytest.approx(2.0)
    assert Flag.IDEAL_CYCLE_TIME_SUSPECT in r.flags
    assert r.oee == pytest.approx(2.0)


def test_null_rules_without_runtime_or_parts() -> None:
    tape = Tape(T0)
    tape.run(JAM, 200)
    _, r = run(plant(), tape.samples, T0, T0 + 199_000)
    assert (r.availability, r.performance, r.oee) == (0.0, None, 0.0)
    tape = Tape(T0)
    tape.run(RUN, 200)
    _, r = run(plant(), tape.samples, T0, T0 + 199_000)
    assert (r.availability, r.performance, r.quality, r.oee) == (1.0, 0.0, None, 0.0)


def test_planned_stop_break_and_startup_scrap() -> None:
    shift = {"name": "s", "start": "06:00", "end": "07:00",
             "breaks": [{"start": "06:50", "end": "07:00"}]}
    tape = Tape(T0)
    tape.run(PLANNED, 300)  # 5 min maintenance: PDOT
    tape.run(SETUP, 300)
    tape.run(RUN, 1200, parts_per_step=1, scrap_every=100)  # 12 scrap, 6 in startup
    tape.run(STOP, 1200)  # 20 min stop: L1
    tape.run(RUN, 1200, parts_per_step=1)  # runs through the break (06:50-07:00)
    agg, r = run(plant([shift]), tape.samples, T0, T0 + H)
    # the second run uses the break (06:50-07:00): PBT, not PDOT; after 07:00 no shift
    assert r.pdot_s == 300
    assert r.pbt_s == 3600 - 300
    assert (r.aust_s, r.l1_s, r.apt_s) == (300, 1200, 1200 + 600)
    assert r.l6_s == pytest.approx(6 * 1.0) and r.l5_s == pytest.approx(6 * 1.0)
    assert agg.pq_unplanned == 0 and r.pq == 1200 + 600
    lost = r.fpt_s + r.l1_s + r.l2_s + r.l3_s + r.l4_s + r.l5_s + r.l6_s
    assert lost == pytest.approx(r.pbt_obs_s)


BREAKS_SHIFT = {"name": "s", "start": "06:00", "end": "08:00",
                "breaks": [{"start": "06:30", "end": "06:45"}, {"start": "07:30", "end": "07:45"}]}


def through_breaks() -> Tape:
    """Runs through the first break (1 part/s, 9 scrap there), idles through the second."""
    tape = Tape(T0)
    tape.run(RUN, 1800, parts_per_step=1)  # 06:00-06:30
    tape.run(RUN, 900, parts_per_step=1, scrap_every=100)  # 06:30-06:45, the break
    tape.run(RUN, 2700, parts_per_step=1)  # 06:45-07:30
    tape.run(IDLE, 900)  # 07:30-07:45, the second break
    tape.run(RUN, 900, parts_per_step=1)  # 07:45-08:00
    tape.emit(RUN)
    return tape


def test_running_through_a_break_is_planned_busy_time() -> None:
    """OEE.md: running during a calendar break moves that interval (time and parts) back
    into PBT; any other state during a break stays PDOT (idle there is no L1)."""
    tape = through_breaks()
    for bucket_ms in (None, 60_000, 7 * 60_000):  # one rule, whatever the buckets
        agg, r = run(plant([BREAKS_SHIFT]), tape.samples, T0, T0 + 2 * H, bucket_ms)
        assert (r.pot_s, r.pdot_s, r.pbt_s) == (7200, 900, 6300)
        assert (r.apt_s, r.l1_s, r.l3_s, r.unk_s, r.fe) == (6300, 0, 0, 0, 0)
        assert (r.pq, r.sq) == pytest.approx((6300, 9))
        assert (agg.pq_unplanned, agg.sq_unplanned) == (0, 0)
        assert r.availability == 1 and r.performance == pytest.approx(1)
        assert r.oee == pytest.approx((6300 - 9) / 6300)
    # the break run alone: all of it PBT and counted
    _, r = run(plant([BREAKS_SHIFT]), tape.samples, T0 + 30 * 60_000, T0 + 45 * 60_000)
    assert (r.pdot_s, r.apt_s, r.pq, r.sq) == (0, 900, 900, 9)
    # the idle break alone: PDOT, nothing planned is left
    _, r = run(plant([BREAKS_SHIFT]), tape.samples, T0 + 90 * 60_000, T0 + 105 * 60_000)
    assert (r.pdot_s, r.pbt_s, r.l1_s, r.oee) == (900, 0, 0, None)
    assert r.flags == (Flag.NOT_SCHEDULED,)


def test_night_shift_across_dst_aggregates_nine_hours() -> None:
    night = {"name": "night", "start": "22:00", "end": "06:00",
             "breaks": [{"start": "02:00", "end": "02:30"}]}
    p = plant([night], timezone="Europe/Berlin", poll_s=60.0)
    start = ms(2026, 10, 24, 19)  # an hour before the shift (22:00 CEST = 20:00 UTC)
    tape = Tape(start, step_ms=60_000)
    tape.run(RUN, 5 * 60, parts_per_step=30)
    tape.run(IDLE, 30)  # the break: 02:00-02:30 CEST (the first 02:00) = 00:00 UTC
    tape.run(RUN, 11 * 60 - 5 * 60 - 30, parts_per_step=30)
    agg, r = run(p, tape.samples, start, start + 11 * H)
    assert r.pot_s == 9 * 3600 and r.pdot_s == 1800
    assert r.apt_s == 9 * 3600 - 1800
    assert r.pq == pytest.approx(30 * (9 * 60 - 30))
    assert agg.pq_unplanned == pytest.approx(30 * (2 * 60 - 1))


def test_aggregates_add_every_field() -> None:
    one = Agg.from_numeric({name: 1 for name in NUMERIC_FIELDS})
    one.orders = {"WO": [1.0, 2.0]}
    two = one + one
    assert two.numeric() == {name: 2 for name in NUMERIC_FIELDS}
    assert two.orders == {"WO": [2.0, 4.0]} and one.orders == {"WO": [1.0, 2.0]}
    assert set(NUMERIC_FIELDS) == {f.name for f in fields(Agg)} - {"orders"}


def test_planned_stop_outside_the_allow_list_is_a_stop() -> None:
    tape = Tape(T0)
    tape.run(PLANNED, 300)  # reason "maintenance"
    tape.emit(PLANNED)
    p = plant()
    spec = KpiMachineSpec.from_plant(p, "m1")
    allowed = compute(total([b.agg for b in aggregate(
        spec, tape.samples, ShiftCalendar.of(p), T0, T0 + 300_000)]))
    narrowed = compute(total([b.agg for b in aggregate(
        spec, tape.samples, ShiftCalendar.of(p), T0, T0 + 300_000,
        settings=KpiSettings(planned_reasons=frozenset({"break"})))]))
    assert (allowed.pdot_s, allowed.l1_s) == (300, 0)
    assert (narrowed.pdot_s, narrowed.l1_s, narrowed.fe) == (0, 300, 0)  # not a failure


def test_unknown_product_counts_without_ideal_time_and_is_flagged() -> None:
    tape = Tape(T0, product=9)  # no product has code 9
    tape.run(RUN, 61, parts_per_step=1)
    agg, r = run(plant(), tape.samples, T0, T0 + 60_000)
    assert (agg.pq, agg.pq_unknown_product, agg.nrt_s) == (60, 60, 0)
    assert Flag.UNKNOWN_PRODUCT in r.flags


def test_product_value_expires_after_three_polls() -> None:
    tape = Tape(T0, product=2)
    tape.run(RUN, 10, parts_per_step=1)
    for _ in range(20):  # samples without the product point
        tape.samples.append(Sample(tape.t, {"state": RUN, "total": tape.total}))
        tape.t += 1000
        tape.total += 1
    agg, _ = run(plant(), tape.samples, T0, T0 + 29_000)
    # 10 pairs with product B (2 s), 3 more while its value is fresh, then unknown
    assert agg.nrt_s == pytest.approx(2.0 * 13) and agg.pq_unknown_product == 29 - 13
