"""WIP per buffer and line, and work-order progress, from per-station aggregates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.kpi.aggregate import aggregate
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.model import KpiMachineSpec
from shopfloor.kpi.wip import Anchor, compute_wip
from shopfloor.kpi.workorders import progress
from tests.kpi.plants import RUN, Tape, ms, plant

T0 = ms(2026, 11, 25, 6)


def test_buffers_line_and_little() -> None:
    line = plant(stations=3).lines[0].model_copy(update={"buffer_capacity": {"m1": 5}})
    edges = [T0 + k * 60_000 for k in range(5)]
    # per bucket (parts, scrap): m1 makes 10/min with 1 scrap, m2 9, m3 9 (1 scrap)
    counts = {
        "m1": [(10, 1)] * 4,
        "m2": [(8, 0), (9, 0), (9, 0), (10, 0)],
        "m3": [(9, 1)] * 4,
    }
    r = compute_wip(line, edges, counts, Anchor(T0, 5, {"m1": 2, "m2": 3}), T0)
    b1, b2 = r.buffers
    # B1 = 2 + (10 - 1 - 8) + (9 - 9) * 2 + (9 - 10) = 2 ; B2 = 3 + (8-9)+0+0+(10-9) = 3
    assert (b1.wip, b2.wip, r.wip) == (2, 3, 5)
    assert (b1.max_wip, b1.drift) == (3, False)
    # line = L(t_a) + dT_1 - dT_n - dR_1 - dR_2 = 5 + 40 - 36 - 4 - 0
    assert r.wip == 5 + 40 - 36 - 4
    assert r.outflow_good == 32 and r.throughput_per_h == pytest.approx(32 / (4 / 60))
    assert r.little_holds and r.lead_time_s == pytest.approx(r.mean_wip / (32 / 240))


def test_drift_is_flagged_and_little_withheld() -> None:
    line = plant(stations=2).lines[0]
    edges = [T0, T0 + 60_000]
    r = compute_wip(line, edges, {"m1": [(3, 0)], "m2": [(5, 0)]}, Anchor(T0), T0)
    assert r.buffers[0].wip is None and r.buffers[0].change == -2
    assert r.wip == -2 and r.drift and not r.little_holds
    assert r.lead_time_s is None


def test_work_order_progress_along_the_line() -> None:
    p = plant(stations=2)
    line = p.lines[0]
    buckets = {}
    for i, station in enumerate(line.stations):
        tape = Tape(T0)
        tape.wo = "WO1"
        tape.run(RUN, 60 * (2 - i), parts_per_step=1, scrap_every=30)
        tape.wo = "WO2"
        tape.run(RUN, 61 if i == 0 else 1, parts_per_step=1)
        spec = KpiMachineSpec.from_plant(p, station)
        buckets[station] = aggregate(spec, tape.samples, ShiftCalendar.of(p), T0, tape.t,
                                     60_000)
    wo1, wo2 = progress(line, buckets, {"WO1": 50, "WO2": 60})
    assert [s.parts for s in wo1.stations] == [120, 60]
    assert wo1.good == 58 and wo1.scrap == 4 + 2 and wo1.remaining == 0
    assert wo1.phase == "done" and wo1.started_ms == T0 and wo1.finished_ms is not None
    assert wo2.phase == "m1" and wo2.good == 0 and wo2.remaining == 60


def test_anchor_before_the_first_sample_does_not_break_the_window() -> None:
    """A stocktake dated before any sample of the window: the live engine then passes
    edges [anchor, ..., end] without one at the window start (it used to raise)."""
    line = plant(stations=2).lines[0]
    anchor_ts, start, end = T0, T0 + 30_000, T0 + 120_000
    edges = [anchor_ts, T0 + 60_000, end]
    counts = {"m1": [(0, 0), (4, 0)], "m2": [(0, 0), (1, 0)]}
    r = compute_wip(line, edges, counts, Anchor(anchor_ts, 7, {"m1": 7}), start)
    assert r.buffers[0].wip == 7 + 4 - 1 and r.wip == 10
    only_anchor = compute_wip(line, [anchor_ts, end], {"m1": [(0, 0)], "m2": [(0, 0)]},
                              Anchor(anchor_ts, 7, {"m1": 7}), start)
    assert only_anchor.wip == 7 and only_anchor.buffers[0].change == 0


M = 60_000
STOCKTAKE = Anchor(T0 + 4 * M, 20, {"m1": 20})  # 20 parts in the buffer at 06:04


def per_minute(n: int) -> dict[str, list[tuple[float, float]]]:
    """m1 makes 10 parts a minute (1 scrap), m2 takes 6: the buffer grows by 3 a minute."""
    return {"m1": [(10, 1)] * n, "m2": [(6, 0)] * n}


def minutes(a: int, b: int) -> list[int]:
    return [T0 + k * M for k in range(a, b + 1)]


def test_window_starting_before_the_stocktake_counts_backwards() -> None:
    """Level at minute k = 20 + 3 (k - 4), before the stocktake as after it (the count
    is never applied at the window start with the flow until the stocktake added)."""
    line = plant(stations=2).lines[0]
    r = compute_wip(line, minutes(2, 8), per_minute(6), [STOCKTAKE], T0 + 2 * M)
    (b,) = r.buffers
    assert (r.wip, b.wip, b.min_wip, b.max_wip) == (32, 32, 14, 32)
    assert r.anchored and r.anchor_ms == T0 + 4 * M
    assert (r.change, b.change, r.inflow, r.outflow_good) == (18, 18, 60, 36)
    assert r.mean_wip == pytest.approx((14 + 32) / 2)


def test_window_starting_at_and_after_the_stocktake() -> None:
    line = plant(stations=2).lines[0]
    at = compute_wip(line, minutes(4, 8), per_minute(4), STOCKTAKE, T0 + 4 * M)
    assert (at.wip, at.buffers[0].min_wip, at.change) == (32, 20, 12)
    assert at.mean_wip == pytest.approx(26)
    # after: the first bucket is the flow from the stocktake to the window (2 minutes)
    counts = {"m1": [(20, 2), (10, 1), (10, 1)], "m2": [(12, 0), (6, 0), (6, 0)]}
    after = compute_wip(line, [T0 + 4 * M, *minutes(6, 8)], counts, STOCKTAKE, T0 + 6 * M)
    assert (after.wip, after.buffers[0].min_wip, after.change, after.inflow) == (32, 26, 6, 20)
    assert after.mean_wip == pytest.approx(29) and after.anchor_ms == T0 + 4 * M


def test_a_second_stocktake_inside_the_window_is_a_step() -> None:
    """A recount at 06:06 finds 30 (26 expected): levels from 06:06 count from it."""
    line = plant(stations=2).lines[0]
    recount = Anchor(T0 + 6 * M, 30, {"m1": 30})
    r = compute_wip(line, minutes(2, 8), per_minute(6), [recount, STOCKTAKE], T0 + 2 * M)
    assert (r.wip, r.anchor_ms, r.change) == (36, T0 + 6 * M, 18)
    assert (r.buffers[0].min_wip, r.buffers[0].max_wip) == (14, 36)
    assert r.mean_wip == pytest.approx((15.5 + 18.5 + 21.5 + 24.5 + 31.5 + 34.5) / 6)


def test_window_before_the_only_stocktake_and_never_anchored() -> None:
    line = plant(stations=2).lines[0]
    # the window 06:00-06:03, the stocktake at 06:04 after it: edges go on to it
    r = compute_wip(line, minutes(0, 4), per_minute(4), STOCKTAKE, T0, end_ms=T0 + 3 * M)
    assert (r.end_ms, r.wip, r.change, r.inflow) == (T0 + 3 * M, 17, 9, 30)
    assert r.mean_wip == pytest.approx((8 + 17) / 2)
    # no stocktake at all: no level (not a negative number), the change since the start
    none = compute_wip(line, minutes(0, 4), {"m1": [(3, 0)] * 4, "m2": [(5, 0)] * 4}, [],
                       T0)
    assert (none.anchored, none.wip, none.anchor_ms, none.mean_wip) == (False, None, None, None)
    assert (none.change, none.buffers[0].change, none.buffers[0].wip) == (-8, -8, None)
    assert not none.drift and not none.little_holds and none.lead_time_s is None


def test_counts_are_whole_parts() -> None:
    """Pairs split in proportion give fractions inside; reported counts are integers
    (the issue saw WIP -12.000000000000002)."""
    line = plant(stations=2).lines[0]
    counts = {"m1": [(0.1, 0.0), (0.2, 0.0), (7.3, 0.1)], "m2": [(0.3, 0.0), (0.0, 0.0),
                                                                  (1.9, 0.0)]}
    r = compute_wip(line, minutes(0, 3), counts, Anchor(T0, 0, {"m1": 0}), T0)
    values = [r.wip, r.change, r.inflow, r.outflow_good, r.buffers[0].wip,
              r.buffers[0].change, r.buffers[0].min_wip, r.buffers[0].max_wip]
    assert values == [5, 5, 8, 2, 5, 5, 0, 5]
    assert all(type(v) is int for v in values)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_level_does_not_depend_on_where_the_window_starts(data: st.DataObject) -> None:
    """The class behind the issue: for any flows, any stocktake and any window, the level
    at an instant is the stocktake's count plus the flow from it, whether the window
    starts before, at or after the stocktake (the flow to a later start arrives as one
    bucket, as the store's rollup sum gives it)."""
    line = plant(stations=3).lines[0]
    n = data.draw(st.integers(2, 12), label="minutes")
    flow = st.tuples(st.integers(0, 20), st.integers(0, 3))
    counts = {s: data.draw(st.lists(flow, min_size=n, max_size=n), label=s)
              for s in line.stations}
    at = data.draw(st.integers(0, n), label="stocktake minute")
    take = Anchor(T0 + at * M, 50, {"m1": 30, "m2": 20})
    start = data.draw(st.integers(0, n - 1), label="window start")
    # line = count + in - out - scrap from the stocktake to the end (L(t) of OEE.md)
    expected = 50 + sum(counts["m1"][k][0] - counts["m1"][k][1] - counts["m2"][k][1]
                        - counts["m3"][k][0] for k in range(at, n))
    if at < start:  # the flow from the stocktake to the window as one bucket
        head = {s: (sum(x[0] for x in c[at:start]), sum(x[1] for x in c[at:start]))
                for s, c in counts.items()}
        edges = [T0 + at * M, *minutes(start, n)]
        window = {s: [head[s], *c[start:]] for s, c in counts.items()}
    else:
        edges, window = minutes(start, n), {s: c[start:] for s, c in counts.items()}
    r = compute_wip(line, edges, window, take, T0 + start * M)
    assert r.wip == expected
    assert r.anchored and r.anchor_ms == take.ts_ms
    assert r.change == sum(c[0] - c[1] for c in counts["m1"][start:]) - sum(
        c[1] for c in counts["m2"][start:]) - sum(c[0] for c in counts["m3"][start:])
