"""The rule types on the KPI payloads, downtime rows and collector stats the engine reads:
each raises after its on-delay and clears after its off-delay, on the data's own event
times; the conditions at and around their thresholds."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.alarms import inputs
from shopfloor.alarms.engine import Engine, Record, payload_of
from shopfloor.alarms.inputs import LineKpi, MachineKpi, StatsPoint, StoredDowntime
from shopfloor.shared.alarm_rules import BUILT_IN, SITE_LINE, KpiName, RuleKind, effective
from shopfloor.shared.contract import AlarmPayload, StatePayload, parse
from shopfloor.shared.enums import EventKind, MachineState
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.plants import example_data

T0 = 1_800_000_000.0


def _plant(rules: dict[str, Any]) -> Plant:
    data = example_data()
    data["alarms"] = {"defaults": rules}
    return parse_plant(data, "<test>")


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat().replace("+00:00", "Z")


def _kpi(at: float, coverage: float | None = 1.0, shift_start: float | None = None,
         **ratios: float | None) -> MachineKpi:
    """A machine's KPI payload as the collector's KPI engine publishes it (extra keys
    included: the view ignores them)."""
    rolling = {"start": _iso(at - 3600), "end": _iso(at), "coverage": coverage,
               "pot_s": 3600.0, "flags": []}
    payload: dict[str, Any] = {"v": 1, "ts": _iso(at), "machine": "press1", "line": "line1",
                               "rolling": rolling}
    if shift_start is not None:
        payload["shift"] = {"start": _iso(shift_start), "end": _iso(at), "shift": "early",
                            "production_date": "2027-01-15", "coverage": coverage, **ratios}
    return parse(MachineKpi, json.dumps(payload))


def _wip(at: float, levels: dict[str, int | None]) -> LineKpi:
    buffers = [{"upstream": up, "downstream": "x", "wip": level, "change": 0,
                "capacity": None, "min_wip": None, "max_wip": None, "drift": False}
               for up, level in levels.items()]
    return parse(LineKpi, json.dumps({"v": 1, "ts": _iso(at),
                                      "wip": {"line": "line1", "buffers": buffers}}))


def _seen(records: list[Record], kind: RuleKind) -> list[tuple[str, EventKind, float]]:
    return [(r.instance.machine, r.transition.kind, r.transition.at) for r in records
            if r.instance.rule.kind is kind]


def test_coverage_below_target_raises_and_clears_on_kpi_time() -> None:
    engine = Engine(_plant({"coverage_low": {"enabled": True, "below_pct": 80, "after_s": 20,
                                             "clear_after_s": 10}}), T0)
    kind = RuleKind.COVERAGE_LOW
    assert engine.on_kpi("press1", _kpi(T0 + 10, coverage=0.95)) == []
    assert engine.on_kpi("press1", _kpi(T0 + 20, coverage=0.5)) == []
    assert _seen(engine.on_kpi("press1", _kpi(T0 + 30, coverage=0.4)), kind) == []
    assert _seen(engine.on_kpi("press1", _kpi(T0 + 40, coverage=0.4)), kind) == \
        [("press1", EventKind.RAISE, T0 + 40)]
    engine.on_kpi("press1", _kpi(T0 + 50, coverage=0.8))  # at the target: not below
    assert _seen(engine.tick(T0 + 65), kind) == [("press1", EventKind.CLEAR, T0 + 60)]


def test_no_coverage_is_not_low_and_the_shift_window_can_be_chosen() -> None:
    rule = BUILT_IN[RuleKind.COVERAGE_LOW]
    assert not inputs.coverage_low(rule, _kpi(T0, coverage=None))
    chosen = effective(_plant({"coverage_low": {"window": "shift"}}).alarms,
                       RuleKind.COVERAGE_LOW)
    assert not inputs.coverage_low(chosen, _kpi(T0, coverage=0.1))  # no shift: no judgment
    assert inputs.coverage_low(chosen, _kpi(T0, coverage=0.1, shift_start=T0 - 60))


def test_shift_kpi_is_judged_only_after_the_grace_into_the_shift() -> None:
    engine = Engine(_plant({"shift_kpi_low": {"enabled": True, "kpi": "availability",
                                              "below_pct": 60, "after_shift_s": 600,
                                              "after_s": 0, "clear_after_s": 0}}), T0)
    kind = RuleKind.SHIFT_KPI_LOW
    start = T0
    assert engine.on_kpi("press1", _kpi(T0 + 300, shift_start=start, availability=0.2)) == []
    raised = _seen(engine.on_kpi("press1", _kpi(T0 + 600, shift_start=start,
                                                availability=0.59, oee=0.9)), kind)
    assert raised == [("press1", EventKind.RAISE, T0 + 600)]
    # a new shift starts: not judged during its first 600 s, so the alarm clears
    cleared = _seen(engine.on_kpi("press1", _kpi(T0 + 700, shift_start=T0 + 690,
                                                 availability=0.1)), kind)
    assert cleared == [("press1", EventKind.CLEAR, T0 + 700)]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(["oee", "availability", "performance", "quality"]),
       st.floats(0, 100), st.one_of(st.none(), st.floats(0, 1.5)))
def test_shift_kpi_condition_is_the_chosen_ratio_below_the_target(
        kpi: str, below_pct: float, value: float | None) -> None:
    chosen = replace(BUILT_IN[RuleKind.SHIFT_KPI_LOW], kpi=KpiName(kpi),
                     below_pct=below_pct, after_shift_s=0.0)
    others = {k: 0.0 for k in ("oee", "availability", "performance", "quality") if k != kpi}
    payload = _kpi(T0, shift_start=T0 - 1, **{kpi: value, **others})
    assert inputs.shift_kpi_low(chosen, payload) is (value is not None
                                                     and value * 100 < below_pct)


def test_buffer_outside_its_limits_raises_on_the_upstream_station() -> None:
    plant = _plant({"buffer_wip": {"enabled": True, "min_parts": 5, "max_parts": 150,
                                   "after_s": 0, "clear_after_s": 0}})
    engine = Engine(plant, T0)
    kind = RuleKind.BUFFER_WIP
    assert ("pack1", kind) not in engine.instances  # the last station: no buffer after it
    got = _seen(engine.on_line_kpi(_wip(T0 + 10, {"press1": 151, "weld1": 4,
                                                  "paint1": None})), kind)
    assert sorted(got) == [("press1", EventKind.RAISE, T0 + 10),
                           ("weld1", EventKind.RAISE, T0 + 10)]
    got = _seen(engine.on_line_kpi(_wip(T0 + 20, {"press1": 150, "weld1": 5,
                                                  "paint1": 0})), kind)
    assert sorted(got) == [("paint1", EventKind.RAISE, T0 + 20),
                           ("press1", EventKind.CLEAR, T0 + 20),
                           ("weld1", EventKind.CLEAR, T0 + 20)]


def _stored(unclassified: dict[str, list[float]] | None = None,
            classified: set[str] | None = None) -> StoredDowntime:
    return StoredDowntime(unclassified or {}, frozenset(classified or ()))


def test_an_unclassified_stored_part_raises_after_the_delay_from_its_start() -> None:
    engine = Engine(_plant({"downtime_unclassified": {"enabled": True, "after_s": 300,
                                                      "clear_after_s": 0,
                                                      "lookback_s": 3600}}), T0)
    kind = RuleKind.DOWNTIME_UNCLASSIFIED
    assert _seen(engine.on_downtime(_stored({"press1": [T0 + 100, T0 + 50]}), T0 + 200),
                 kind) == []
    assert _seen(engine.tick(T0 + 400), kind) == [("press1", EventKind.RAISE, T0 + 350)]
    assert _seen(engine.on_downtime(_stored(), T0 + 500), kind) == \
        [("press1", EventKind.CLEAR, T0 + 500)]
    # an event the API wrote late does not reach back before the clear
    engine.on_downtime(_stored({"press1": [T0 + 450]}), T0 + 600)
    assert _seen(engine.tick(T0 + 799), kind) == []
    assert _seen(engine.tick(T0 + 800), kind) == [("press1", EventKind.RAISE, T0 + 800)]
    # an event older than the lookback is not watched
    assert _seen(engine.on_downtime(_stored({"press1": [T0 + 450 - 3600]}), T0 + 900),
                 kind) == [("press1", EventKind.CLEAR, T0 + 900)]


def _state(state: MachineState, since: float, reason: str | None) -> StatePayload:
    at = dt.datetime.fromtimestamp(since, dt.UTC)
    return StatePayload(ts=at, state=state, since=at, reason=reason)


def test_an_ongoing_stop_counts_once_it_is_an_unclassified_event() -> None:
    """The example's line1 threshold is 120 s; `jam` maps to a reason, `operator_stop`
    is generic (unclassified)."""
    engine = Engine(_plant({"downtime_unclassified": {"enabled": True, "after_s": 300,
                                                      "clear_after_s": 0}}),
                    T0)
    kind = RuleKind.DOWNTIME_UNCLASSIFIED
    engine.on_state("press1", _state(MachineState.STOPPED, T0, "operator_stop"))
    engine.on_state("weld1", _state(MachineState.STOPPED, T0, "jam"))
    engine.on_state("paint1", _state(MachineState.SETUP, T0, None))
    assert engine.on_downtime(_stored(), T0 + 119) == []  # not an event yet
    engine.on_downtime(_stored(), T0 + 120)
    assert _seen(engine.tick(T0 + 301), kind) == [("press1", EventKind.RAISE, T0 + 300)]
    # someone classified the ongoing event: its parts are stored, classified
    cleared = engine.on_downtime(_stored(classified={f"press1:{int(T0 * 1000)}"}), T0 + 400)
    assert _seen(cleared, kind) == [("press1", EventKind.CLEAR, T0 + 400)]


def test_collector_lag_and_dead_letters_raise_per_collector() -> None:
    engine = Engine(_plant({"collector_lag": {"max_lag_s": 5, "after_s": 0,
                                              "clear_after_s": 20},
                            "dead_letters": {"min_increase": 2, "after_s": 0,
                                             "clear_after_s": 0}}), T0)
    lag, dead = RuleKind.COLLECTOR_LAG, RuleKind.DEAD_LETTERS
    records = engine.on_stats("c1", StatsPoint(T0 + 10, 7, 1.0))  # first point: a baseline
    assert records == []
    records = engine.on_stats("c1", StatsPoint(T0 + 20, 9, 6.0))
    assert _seen(records, lag) == [("c1", EventKind.RAISE, T0 + 20)]
    assert _seen(records, dead) == [("c1", EventKind.RAISE, T0 + 20)]
    assert records[0].instance.line == SITE_LINE
    records = engine.on_stats("c1", StatsPoint(T0 + 30, 10, None))  # +1, no telemetry
    assert _seen(records, dead) == [("c1", EventKind.CLEAR, T0 + 30)]
    assert _seen(records, lag) == []  # the off-delay
    records = engine.on_stats("c1", StatsPoint(T0 + 40, 3, 0.5))  # collector restarted: +3
    assert _seen(records, dead) == [("c1", EventKind.RAISE, T0 + 40)]
    assert _seen(engine.tick(T0 + 50), lag) == [("c1", EventKind.CLEAR, T0 + 50)]
    assert engine.on_stats("c2", StatsPoint(T0 + 40, 100, 0.1)) == []


def test_site_alarms_restore_from_their_retained_payloads() -> None:
    plant = _plant({"collector_lag": {"max_lag_s": 5, "after_s": 0}})
    first = Engine(plant, T0)
    first.on_stats("c1", StatsPoint(T0 + 10, 0, 9.0))
    retained = [parse(AlarmPayload, payload_of(first.site, i, None, T0 + 11).to_json())
                for i in first.instances.values() if i.line == SITE_LINE]
    assert [p.machine for p in retained] == ["c1", "c1"]
    second = Engine(plant, T0 + 20)
    for payload in retained:
        second.restore(payload)
    assert second.instances["c1", RuleKind.COLLECTOR_LAG].alarm.condition
    assert second.on_stats("c1", StatsPoint(T0 + 10, 0, 9.0)) == []  # seen: nothing again


def test_the_readers_take_influx_series() -> None:
    series = [{"name": "downtime", "tags": {"machine": "press1", "reason": "unclassified"},
               "columns": ["time", "event", "active"],
               "values": [[1_000, "press1:1000", True], [2_000, "press1:2000", False],
                          [3_000, "press1:3000", True]]},
              {"name": "downtime", "tags": {"machine": "press1", "reason": "jam"},
               "columns": ["time", "event", "active"],
               "values": [[2_000, "press1:2000", True], [4_000, "press1:4000", False]]}]
    assert inputs.stored_downtime(series) == StoredDowntime({"press1": [1.0, 3.0]},
                                                            frozenset({"press1:2000"}))
    stats = [{"name": "collector_stats", "tags": {"collector": "c1"},
              "columns": ["time", "dead_letters", "lag_p99_s"],
              "values": [[1_000, 3, None], [2_000, 4, 0.25], [3_000, None, 1.0]]}]
    assert inputs.stats_points(stats) == {"c1": [StatsPoint(1.0, 3, None),
                                                 StatsPoint(2.0, 4, 0.25)]}
    assert ">= 5ms" in inputs.downtime_query("demo", 5)
    assert "> 7ms" in inputs.stats_query("demo", 7)


coverages = st.lists(st.tuples(st.integers(1, 120), st.sampled_from([0.2, 0.79, 0.8, 1.0]),
                               st.booleans()), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(coverages, st.integers(0, 25))
def test_a_restart_anywhere_gives_the_same_kpi_transitions(
        script: list[tuple[int, float, bool]], restart_at: int) -> None:
    """KPI payloads (coverage_low) and ticks at any moments, the component restarted
    before step `restart_at` (restored from its retained payloads as sent, then handed the
    retained KPI payload again): the transitions of a run without the restart."""
    restart_at %= len(script)
    plant = _plant({"coverage_low": {"enabled": True, "below_pct": 80, "after_s": 30,
                                     "clear_after_s": 20}})
    whole, parts, now = Engine(plant, T0), Engine(plant, T0), T0
    expected: list[Record] = []
    got: list[Record] = []
    last: MachineKpi | None = None
    for i, (gap, coverage, tick) in enumerate(script):
        if i == restart_at:
            retained = [payload_of(parts.site, inst, None, now).to_json()
                        for inst in parts.instances.values()]
            parts = Engine(plant, now)
            for raw in retained:
                parts.restore(parse(AlarmPayload, raw))
            if last is not None:
                got += parts.on_kpi("press1", last)
        now += gap
        if tick:
            expected += whole.tick(now)
            got += parts.tick(now)
        last = _kpi(now, coverage=coverage)
        expected += whole.on_kpi("press1", last)
        got += parts.on_kpi("press1", last)
    expected += whole.tick(now + 1000)
    got += parts.tick(now + 1000)
    kind = RuleKind.COVERAGE_LOW
    assert _seen(got, kind) == _seen(expected, kind)
