"""On-demand KPIs from a real InfluxDB holding telemetry written as the collector does."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from shopfloor.cli import main
from shopfloor.kpi.aggregate import aggregate
from shopfloor.kpi.buckets import total
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.model import KpiMachineSpec
from shopfloor.kpi.oee import compute
from shopfloor.kpi.ondemand import Engine, compute_oee, compute_wip
from shopfloor.kpi.records import rollup_lines, target_line
from shopfloor.kpi.store import KpiStore
from shopfloor.shared.plant import Plant
from tests.kpi.conftest import store_samples
from tests.kpi.plants import JAM, RUN, SETUP, Tape, ms

T0 = ms(2026, 11, 25, 6)
SHIFT = {"name": "early", "start": "06:00", "end": "07:00",
         "breaks": [{"start": "06:30", "end": "06:35"}]}


def history(product: int = 1) -> Tape:
    tape = Tape(T0 - 300_000, product=product)
    tape.wo = "WO7"
    tape.run(RUN, 900, parts_per_step=1, scrap_every=40)
    tape.run(JAM, 400)
    tape.run(SETUP, 200)
    tape.product = 2
    tape.run(RUN, 600, parts_per_step=1, scrap_every=25)
    tape.run(JAM, 350)
    tape.gap(30)  # at 06:35:50, after the break
    tape.run(RUN, 1800, parts_per_step=1)
    return tape


def direct(plant: Plant, tape: Tape, lo: int, hi: int):  # noqa: ANN201 - test helper
    spec = KpiMachineSpec.from_plant(plant, "m1")
    buckets = aggregate(spec, tape.samples, ShiftCalendar.of(plant), lo, hi)
    return compute(total([b.agg for b in buckets]))


def close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-6), key
        else:
            assert a[key] == b[key], key


def test_raw_window_equals_the_pure_engine(make_plant: Callable[..., Plant],
                                           open_store: Callable[[Plant], KpiStore]) -> None:
    plant = make_plant(shifts=[SHIFT])
    store = open_store(plant)
    tape = history()
    store_samples(store, "m1", tape.samples)
    lo, hi = T0 + 12_345, T0 + 3_000_000  # not on minute boundaries
    report = compute_oee(plant, store, "m1", lo, hi)
    assert report.rollup_minutes == 0
    close(report.result.as_dict(), direct(plant, tape, lo, hi).as_dict())
    assert report.result.pq > 0 and report.result.unk_s == 31  # the 30 s gap + 1 poll


def test_rollups_and_raw_edges_give_the_same_result(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore]) -> None:
    plant = make_plant(shifts=[SHIFT])
    store = open_store(plant)
    tape = history()
    store_samples(store, "m1", tape.samples)
    spec = KpiMachineSpec.from_plant(plant, "m1")
    # rollups for 06:10-06:40, one minute (06:20) missing and one not final (06:21)
    buckets = aggregate(spec, tape.samples, ShiftCalendar.of(plant), T0 + 600_000,
                        T0 + 2_400_000, 60_000)
    lines = []
    for b in buckets:
        if b.start_ms != T0 + 1_200_000:
            lines += rollup_lines(plant.site.id, "l1", "m1", b.start_ms, b.agg,
                                  final=b.start_ms != T0 + 1_260_000)
    store.write(lines)
    lo, hi = T0 + 5_500, T0 + 3_600_000
    report = compute_oee(plant, store, "m1", dt.datetime.fromtimestamp(lo / 1000, dt.UTC),
                         dt.datetime.fromtimestamp(hi / 1000, dt.UTC))
    assert report.rollup_minutes == 28
    close(report.result.as_dict(), direct(plant, tape, lo, hi).as_dict())
    raw = Engine(plant, store, use_rollups=False).oee("m1", lo, hi)
    assert raw.rollup_minutes == 0
    close(raw.result.as_dict(), report.result.as_dict())


def test_wip_and_work_orders_from_stocktake(make_plant: Callable[..., Plant],
                                            open_store: Callable[[Plant], KpiStore]) -> None:
    plant = make_plant(stations=2)
    store = open_store(plant)
    up, down = Tape(T0), Tape(T0)
    up.wo = down.wo = "WO1"
    up.run(RUN, 600, parts_per_step=2, scrap_every=60)  # 1200 parts over 600 s, 10 scrap
    down.run(RUN, 600, parts_per_step=1)
    store_samples(store, "m1", up.samples)
    store_samples(store, "m2", down.samples)
    # a stocktake as the API writes it: 7 parts in the line at T0 + 30 s
    store.write([f"wip_anchor,buffer=_line,line=l1,site={plant.site.id} count=7i "
                 f"{T0 + 30_000}", target_line(plant.site.id, "l1", "WO1", 500, "A", T0)])
    report = compute_wip(plant, store, "l1", T0 + 60_000, T0 + 599_000)
    w = report.wip
    assert w.anchored and w.anchor_ms == T0 + 30_000
    # from the anchor: m1 made 2/s for 569 s (minus scrap every 60 s), m2 1/s
    scrap = sum(1 for i in range(600) if (i + 1) % 60 == 0 and 30 <= i < 599)
    assert w.wip == pytest.approx(7 + 2 * 569 - scrap - 569)
    assert w.buffers[0].wip is None  # only a line count was taken
    (order,) = report.orders
    assert order.id == "WO1" and order.target == 500
    assert order.stations[0].parts == pytest.approx(2 * 539)
    assert order.good == pytest.approx(539) and order.phase == "done"


def test_cli_prints_a_shift_as_table_and_json(make_plant: Callable[..., Plant],
                                              open_store: Callable[[Plant], KpiStore],
                                              tmp_path: Path) -> None:
    plant = make_plant(shifts=[SHIFT])
    store = open_store(plant)
    tape = history()
    store_samples(store, "m1", tape.samples)
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(plant.model_dump(mode="json", exclude_none=True)))
    args = ["oee", str(path), "--machine", "m1", "--shift", "early", "--date", "2026-11-25"]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert "availability" in table.output and "2026-11-25/early" in table.output
    expected = direct(plant, tape, T0, T0 + 3_600_000).as_dict()
    for extra in ([], ["--raw"]):
        result = CliRunner().invoke(main, [*args, "--json", *extra])
        close(json.loads(result.output)["result"], expected)
    bad = CliRunner().invoke(main, ["oee", str(path), "--machine", "nope", "--start",
                                    "2026-11-25T06:00", "--end", "2026-11-25T07:00"])
    assert bad.exit_code == 1 and "unknown machine" in bad.output


def _two_stations(store: KpiStore) -> None:
    """m1 makes 2 parts/s, m2 takes 1/s for 10 min from 06:00: the line grows 60/min."""
    up, down = Tape(T0), Tape(T0)
    up.run(RUN, 600, parts_per_step=2)
    down.run(RUN, 600, parts_per_step=1)
    store_samples(store, "m1", up.samples)
    store_samples(store, "m2", down.samples)


def test_wip_windows_before_at_and_after_a_stocktake(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore]) -> None:
    """Hand-computed: 200 parts counted at 06:04, +60 a minute, so the level at 06:0k is
    200 + 60 (k - 4) whichever side of the stocktake the window starts (it used to apply
    the count at the window's start: 200 + 6 x 60 = 560 at 06:08 for 06:02-06:08)."""
    plant = make_plant(stations=2)
    store = open_store(plant)
    _two_stations(store)
    store.write([f"wip_anchor,buffer={b},line=l1,site={plant.site.id} count=200i "
                 f"{T0 + 4 * 60_000}" for b in ("_line", "m1")])
    m = 60_000
    for lo in (T0 + 2 * m, T0 + 4 * m, T0 + 6 * m, T0 + 6 * m + 30_000):
        w = compute_wip(plant, store, "l1", lo, T0 + 8 * m).wip
        assert (w.wip, w.buffers[0].wip, w.anchor_ms) == (440, 440, T0 + 4 * m), lo
        assert w.change == 60 * (T0 + 8 * m - lo) // m
        assert w.buffers[0].min_wip == 200 + 60 * (lo - T0 - 4 * m) // m
    before = compute_wip(plant, store, "l1", T0 + 2 * m, T0 + 8 * m).wip
    assert before.mean_wip == pytest.approx((80 + 440) / 2)
    # a window that ends before the only stocktake counts backwards from it
    early = compute_wip(plant, store, "l1", T0 + m, T0 + 3 * m).wip
    assert (early.wip, early.anchor_ms, early.end_ms) == (140, T0 + 4 * m, T0 + 3 * m)
    # a recount at 06:06:30 (400): from then on the level counts from it
    store.write([f"wip_anchor,buffer=_line,line=l1,site={plant.site.id} count=400i "
                 f"{T0 + 6 * m + 30_000}"])
    w = compute_wip(plant, store, "l1", T0 + 2 * m, T0 + 8 * m).wip
    assert (w.wip, w.anchor_ms, w.buffers[0].wip) == (400 + 90, T0 + 6 * m + 30_000, None)
    assert all(type(v) is int for v in (w.wip, w.change, w.inflow, w.outflow_good))


def test_wip_never_anchored_reports_the_change(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore],
        tmp_path: Path) -> None:
    plant = make_plant(stations=2, collector={"kpi_max_raw_s": 3600})
    store = open_store(plant)
    _two_stations(store)
    w = compute_wip(plant, store, "l1", T0 + 60_000, T0 + 180_000).wip
    assert (w.anchored, w.wip, w.change, w.mean_wip) == (False, None, 120, None)
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(plant.model_dump(mode="json", exclude_none=True)))
    args = ["oee", str(path), "--line", "l1", "--start", "2026-11-25T06:01Z",
            "--end", "2026-11-25T06:03Z"]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0, table.output
    assert "unanchored" in table.output and "-0." not in table.output
    assert json.loads(CliRunner().invoke(main, [*args, "--json"]).output)["wip"]["change"] == 120
    # beyond the raw bound (no rollups stored): a clear refusal, no traceback
    far = CliRunner().invoke(main, ["oee", str(path), "--machine", "m1", "--start",
                                    "2026-11-25T06:00Z", "--end", "2026-11-25T08:00Z"])
    assert far.exit_code == 1 and "[too much work]" in far.output, far.output
    assert "kpi_max_raw_s" in far.output


def test_store_reads_whole_stocktakes(make_plant: Callable[..., Plant],
                                      open_store: Callable[[Plant], KpiStore]) -> None:
    """A stocktake is all its points at one instant: an older per-buffer point of another
    stocktake is not part of a newer line-only one."""
    plant = make_plant(stations=3)
    store = open_store(plant)
    site = plant.site.id
    store.write([f"wip_anchor,buffer={b},line=l1,site={site} count={c}i {t}" for b, c, t in (
        ("_line", 30, T0 + 2000), ("m1", 10, T0 + 2000), ("m2", 5, T0 + 1000),
        ("_line", 5, T0 + 1000), ("_line", 8, T0 + 9000))])
    latest = store.anchor("l1", T0 + 5000)
    assert latest is not None and (latest.ts_ms, latest.line_count, dict(latest.buffers)) == (
        T0 + 2000, 30, {"m1": 10})
    assert [a.ts_ms for a in store.anchors("l1", T0 + 1500, T0 + 9000)] == [
        T0 + 1000, T0 + 2000, T0 + 9000]
    after = store.anchor_after("l1", T0 + 2000)
    assert after is not None and (after.ts_ms, after.line_count) == (T0 + 9000, 8)
    assert store.anchor("l1", T0) is None and store.anchor_after("l1", T0 + 9000) is None
