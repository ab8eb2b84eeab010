"""Downtime classifications in the KPIs: a stop an operator classified as planned leaves
PBT (PDOT), as setup becomes L2; hand-computed on a tape, then on demand from a real
InfluxDB where rollups written before the classification must not hide it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shopfloor.api.downtime import events as ev
from shopfloor.api.downtime import rows
from shopfloor.kpi.aggregate import aggregate
from shopfloor.kpi.buckets import total
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.classified import Classified
from shopfloor.kpi.live import LiveKpi
from shopfloor.kpi.model import KpiMachineSpec
from shopfloor.kpi.oee import OeeResult, compute
from shopfloor.kpi.ondemand import Engine
from shopfloor.kpi.records import rollup_lines
from shopfloor.kpi.store import KpiStore
from shopfloor.shared.enums import MachineState
from shopfloor.shared.plant import Plant
from shopfloor.shared.reasons import Downtime, Loss, tree_of
from tests.kpi.conftest import store_samples
from tests.kpi.plants import JAM, RUN, Tape, ms, plant
from tests.kpi.test_live import Clock, feed, final_record, same

T0 = ms(2026, 11, 25, 6)
SHIFT = {"name": "early", "start": "06:00", "end": "07:00"}
JAM_START, JAM_END = T0 + 600_000, T0 + 1_000_000  # 400 s jam from 06:10


def tape(after_s: int = 2700) -> Tape:
    t = Tape(T0 - 60_000)
    t.run(RUN, 660, parts_per_step=1)
    t.run(JAM, 400)
    t.run(RUN, after_s, parts_per_step=1)
    return t


def kpis(p: Plant, spans: list[Classified]) -> OeeResult:
    spec = KpiMachineSpec.from_plant(p, "m1")
    buckets = aggregate(spec, tape().samples, ShiftCalendar.of(p), T0, T0 + 3_600_000, 60_000,
                        classified=spans)
    return compute(total([b.agg for b in buckets]))


def invariant(r: OeeResult) -> None:
    losses = r.l1_s + r.l2_s + r.l3_s + r.l4_s + r.l5_s + r.l6_s
    assert r.pbt_obs_s == pytest.approx(r.fpt_s + losses)


def test_planned_moves_the_stop_out_of_pbt() -> None:
    p = plant(shifts=[SHIFT])
    base = kpis(p, [])
    assert (base.pbt_s, base.l1_s, base.pdot_s, base.fe) == (3600, 400, 0, 1)
    planned = kpis(p, [Classified(JAM_START, JAM_END, Loss.PLANNED)])
    assert (planned.pbt_s, planned.l1_s, planned.pdot_s, planned.fe) == (3200, 0, 400, 0)
    assert planned.availability == 1.0 and base.availability == pytest.approx(3200 / 3600)
    assert planned.pq == base.pq
    invariant(planned)


def test_setup_becomes_l2_and_a_split_event_counts_per_part() -> None:
    p = plant(shifts=[SHIFT])
    setup = kpis(p, [Classified(JAM_START, JAM_END, Loss.SETUP)])
    assert (setup.l1_s, setup.l2_s, setup.aust_s, setup.fe) == (0, 400, 400, 0)
    invariant(setup)
    # a jam (unplanned, not given) that turned into a planned meeting after 100 s
    split = kpis(p, [Classified(JAM_START + 100_000, JAM_END, Loss.PLANNED)])
    assert (split.l1_s, split.pdot_s, split.fe) == (100, 300, 1)
    invariant(split)


def test_running_time_is_never_reclassified() -> None:
    p = plant(shifts=[SHIFT])
    wide = kpis(p, [Classified(T0, T0 + 3_600_000, Loss.PLANNED)])
    assert (wide.apt_s, wide.pdot_s, wide.l1_s) == (3200, 400, 0)


def test_on_demand_reads_classifications_over_stale_rollups(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore]) -> None:
    """Rollups written before the classification (as the live engine does) cover every
    minute; the classification stored by the API afterwards still moves the time: the
    touched minutes are recomputed from telemetry."""
    p = make_plant(shifts=[SHIFT])
    store = open_store(p)
    t = tape()
    store_samples(store, "m1", t.samples)
    spec = KpiMachineSpec.from_plant(p, "m1")
    buckets = aggregate(spec, t.samples, ShiftCalendar.of(p), T0, T0 + 3_600_000, 60_000)
    store.write([line for b in buckets
                 for line in rollup_lines(p.site.id, "l1", "m1", b.start_ms, b.agg, final=True)])
    engine = Engine(p, store)
    before = engine.oee("m1", T0, T0 + 3_600_000)
    assert before.rollup_minutes == 60 and before.result.l1_s == 400
    tree = tree_of(Downtime.model_validate({"categories": [{"id": "org", "reasons": [
        {"code": "meeting", "loss": "planned"}]}]}), "l1", 120)
    event = ev.new_event("l1", "m1", JAM_START, JAM_END, MachineState.STOPPED, "jam", tree)
    event = ev.classify(event, 0, "meeting", "op", "", tree)
    store.write([rows.to_line(p.site.id, s) for s in rows.changes(event, tree, [])])
    after = engine.oee("m1", T0, T0 + 3_600_000)
    assert after.rollup_minutes == 60 - 7  # 06:10..06:16:40 touched
    assert (after.result.pbt_s, after.result.l1_s, after.result.pdot_s) == (3200, 0, 400)
    assert after.result.as_dict() == kpis(p, [Classified(JAM_START, JAM_END,
                                                         Loss.PLANNED)]).as_dict()


def test_live_kpis_take_a_classification_at_the_next_tick(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore]) -> None:
    """The live sink (as the collector runs it) wrote the shift's final record with the
    jam as L1; the operator classifies it as planned; the next tick redoes the record,
    equal to the on-demand result."""
    p = make_plant(shifts=[SHIFT], collector={"lateness_s": 3600})
    store = open_store(p)
    sink = LiveKpi(p, store, clock=Clock())
    feed(sink, store, tape(after_s=3600).samples)  # past the shift's end: final record
    sink.tick()
    assert (final_record(store)["l1_s"], final_record(store)["pdot_s"]) == (400, 0)
    tree = tree_of(Downtime.model_validate({"categories": [{"id": "org", "reasons": [
        {"code": "meeting", "loss": "planned"}]}]}), "l1", 120)
    event = ev.new_event("l1", "m1", JAM_START, JAM_END, MachineState.STOPPED, "jam", tree)
    event = ev.classify(event, 0, "meeting", "op", "", tree)
    store.write([rows.to_line(p.site.id, s) for s in rows.changes(event, tree, [])])
    sink.tick()
    record = final_record(store)
    assert (record["l1_s"], record["pdot_s"], record["pbt_s"]) == (0, 400, 3200)
    on_demand = Engine(p, store).oee("m1", T0, T0 + 3_600_000).result.as_dict()
    # Fields that became null (MTBF/MTTR: no failure left) keep their old value in a
    # rewritten InfluxDB point (kpi/records.py writes no null): compared where defined.
    same(record, {k: v for k, v in on_demand.items() if v is not None})
