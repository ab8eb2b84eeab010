"""WIP per buffer and line, and work-order progress, from per-station aggregates."""

from __future__ import annotations

import pytest

from shopfloor.kpi.aggregate import aggregate
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.model import MachineSpec
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
        spec = MachineSpec.from_plant(p, station)
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
