"""Every panel's and variable's query of every committed dashboard, run against a real
InfluxDB (1.6) with Grafana's macros expanded as Grafana does, returns data of the shape
its panel needs; the site/line/machine variables really filter."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import pytest

from shopfloor.collector.stats import summarize
from shopfloor.dashboards.build import load_committed
from shopfloor.dashboards.macros import Variable, expand
from shopfloor.dashboards.panels_model import annotation_queries, panel_queries, walk_panels
from shopfloor.dashboards.verify import verify_dashboard
from shopfloor.kpi.calendar import ShiftCalendar
from tests.dashboards import data
from tests.dashboards.conftest import Filled

DASHBOARDS = load_committed()


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_query_returns_what_its_panel_draws(filled: Filled, name: str) -> None:
    outcomes = verify_dashboard(filled.client, DASHBOARDS[name], filled.window.from_ms,
                                filled.window.to_ms)
    assert outcomes
    problems = [f"{o.label}: {o.problems} <- {o.query}" for o in outcomes if o.problems]
    assert problems == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_one_site_selected_shows_only_that_site(filled: Filled, name: str) -> None:
    site_a = filled.sites[0]
    outcomes = verify_dashboard(filled.client, DASHBOARDS[name], filled.window.from_ms,
                                filled.window.to_ms, {"site": [site_a]})
    line_variable = next(o for o in outcomes if o.label.endswith("/ $line"))
    site_a_lines = sorted(line.id for line in filled.plants[0].lines)
    assert [row[1] for s in line_variable.series for row in s["values"]] == site_a_lines
    only_b = {line.id for line in filled.plants[1].lines} - set(site_a_lines)
    assert only_b == {filled.lines[1]}
    for outcome in outcomes:
        assert filled.sites[1] not in outcome.query
        assert not any(s.get("tags", {}).get("line") in only_b for s in outcome.series)


def test_multi_value_regex_form_selects_both_sites(filled: Filled) -> None:
    site = Variable("site", list(filled.sites), multi=True, include_all=True)
    query = expand('SHOW TAG VALUES FROM "telemetry" WITH KEY = "line" WHERE '
                   '"site" =~ /^$site$/', {"site": site}, 0, 1, 1)
    assert f"/^({filled.sites[0]}|{filled.sites[1]})$/" in query
    series = filled.client.query(query)
    every_line = {line.id for plant in filled.plants for line in plant.lines}
    assert sorted(row[1] for s in series for row in s["values"]) == sorted(every_line)
    assert set(filled.lines) < every_line


def test_lost_samples_panel_counts_the_one_gap(filled: Filled) -> None:
    outcomes = verify_dashboard(filled.client, DASHBOARDS["system-health.json"],
                                filled.window.from_ms, filled.window.to_ms)
    lost = next(o for o in outcomes if o.label.endswith("(sequence gaps)"))
    per_machine = {(s["tags"]["site"], s["tags"]["machine"]): s["values"][0][1]
                   for s in lost.series}
    assert len(per_machine) == sum(len(plant.machines) for plant in filled.plants)
    assert per_machine.pop((filled.sites[0], "press1")) == 1
    assert set(per_machine.values()) == {0}


def test_collector_panels_show_lag_and_dead_letters_across_a_restart(filled: Filled) -> None:
    outcomes = verify_dashboard(filled.client, DASHBOARDS["system-health.json"],
                                filled.window.from_ms, filled.window.to_ms)
    lag = next(o for o in outcomes if o.label.endswith("End-to-end lag"))
    expected = summarize(data.STATS_LAGS)
    assert {s["tags"]["site"] for s in lag.series} == set(filled.sites)
    for s in lag.series:
        rows = [dict(zip(s["columns"], row, strict=True)) for row in s["values"]]
        assert {r["p50"] for r in rows if r["p50"] is not None} == {expected.p50_s}
        assert {r["p99"] for r in rows if r["p99"] is not None} == {expected.p99_s}
    dead = next(o for o in outcomes if o.label.endswith("Dead letters"))
    interval_min = int(re.search(r"time\((\d+)s\)", dead.query)[1]) / 60
    drops = totals = 0  # dead letters before the restart + after it
    for before, after in pairwise(s for _, s in data.stats_snapshots(filled.window)):
        step = sum(after.dead_letters.values()) - sum(before.dead_letters.values())
        totals += max(step, 0)
        drops += step < 0
    assert drops == 1  # the restart, which the panel must not count
    for s in dead.series:
        per_min = [row[1] for row in s["values"] if row[1] is not None]
        assert min(per_min) >= 0
        assert round(sum(per_min) * interval_min) == totals


def test_edge_queue_depth_panel_shows_the_backlog_per_agent(filled: Filled) -> None:
    outcomes = verify_dashboard(filled.client, DASHBOARDS["system-health.json"],
                                filled.window.from_ms, filled.window.to_ms)
    depth = next(o for o in outcomes if o.label.endswith("Edge queue depth"))
    assert {s["tags"]["site"] for s in depth.series} == set(filled.sites)
    for s in depth.series:
        values = [row[1] for row in s["values"] if row[1] is not None]
        assert max(values) == max(data.QUEUE_DEPTHS)
        assert sorted(values) == sorted(data.QUEUE_DEPTHS)


def test_line_oee_is_summed_not_averaged(filled: Filled) -> None:
    outcomes = verify_dashboard(filled.client, DASHBOARDS["plant-overview.json"],
                                filled.window.from_ms, filled.window.to_ms)
    line = next(o for o in outcomes if o.label.endswith("OEE per line"))
    machine = next(o for o in outcomes if o.label.endswith("OEE per machine"))
    # every machine runs the same minutes: FPT / PBT_obs = 38 s / 60 s
    lines = sum(len(plant.lines) for plant in filled.plants)  # one series per site and line
    assert [round(s["values"][0][1], 6) for s in line.series] == [round(38 / 60, 6)] * lines
    assert len(machine.series) == sum(len(plant.machines) for plant in filled.plants)


def test_verify_command_reports_every_panel(filled: Filled, influxdb) -> None:
    from click.testing import CliRunner

    from shopfloor.cli import main

    database = filled.client.database
    result = CliRunner().invoke(main, ["dashboards", "verify", "--influx-url", influxdb.url,
                                       "--database", database, "--since", "3h"])
    assert result.exit_code == 0, result.output
    assert "Machine detail / Six big losses: ok" in result.output
    empty = CliRunner().invoke(main, ["dashboards", "verify", "--influx-url", influxdb.url,
                                      "--database", "nothing_here"])
    assert empty.exit_code == 1 and "database not found: nothing_here" in empty.output


def _sorted_rows(model: dict, outcome, panel_title: str) -> list[tuple[str, float]]:
    """(reason, value) rows of a by-reason table, ordered by the panel's own sortBy
    transformation (as Grafana would draw the bars)."""
    panel = next(p for p in walk_panels(model["panels"]) if p.get("title") == panel_title)
    sort = next(t for t in panel["transformations"] if t["id"] == "sortBy")["options"]["sort"][0]
    rows = [dict(zip(s["columns"], row, strict=True), reason=s["tags"]["reason"])
            for s in outcome.series for row in s["values"]]
    rows.sort(key=lambda r: r[sort["field"]], reverse=sort["desc"])
    return [(r["reason"], r[sort["field"]]) for r in rows]


def test_downtime_pareto_sums_classified_durations_longest_first(filled: Filled) -> None:
    model = DASHBOARDS["machine-detail.json"]
    outcomes = verify_dashboard(filled.client, model, filled.window.from_ms, filled.window.to_ms)
    title = "Downtime by classified reason (Pareto, s)"
    downtime = next(o for o in outcomes if o.label.endswith(title))
    step = data.STATE_STEP_S  # three jams (PLC-classified) and two starvations ended:
    # an operator classified the first; the third is still open
    assert _sorted_rows(model, downtime, title) == [
        ("jam", 3 * step), ("starved", step), ("unclassified", step)]
    stops = next(o for o in outcomes if o.label.endswith("Stops by PLC reason (count)"))
    assert _sorted_rows(model, stops, "Stops by PLC reason (count)") == [
        ("jam", 3), ("starved", 2)]


def test_downtime_log_lists_each_event_with_its_classification(filled: Filled) -> None:
    outcomes = verify_dashboard(filled.client, DASHBOARDS["machine-detail.json"],
                                filled.window.from_ms, filled.window.to_ms,
                                {"site": [filled.sites[0]], "line": filled.lines[0],
                                 "machine": "press1"})
    log = next(o for o in outcomes if o.label.endswith("Downtime log"))
    rows = [dict(zip(s["columns"], row, strict=True)) for s in log.series
            for row in s["values"]]
    assert [(r["state"], r["plc_reason"], r["reason"], r["loss"], r["by"], r["duration_s"])
            for r in rows] == [
        ("stopped", "jam", "jam", "unplanned", "plc", 600.0),
        ("idle", "starved", "starved", "unplanned", "op1", 600.0),
        ("stopped", "jam", "jam", "unplanned", "plc", 600.0),
        ("idle", "starved", "unclassified", "unclassified", "", 600.0),
        ("stopped", "jam", "jam", "unplanned", "plc", 600.0)]
    assert [r["event"] for r in rows] == [f"press1:{r['time']}" for r in rows]


def test_line_shows_unclassified_minutes_per_shift(filled: Filled) -> None:
    outcomes = verify_dashboard(filled.client, DASHBOARDS["line-flow.json"],
                                filled.window.from_ms, filled.window.to_ms,
                                {"site": [filled.sites[0]]})
    panel = next(o for o in outcomes if o.label.endswith("Unclassified downtime per shift (min)"))
    got = {s["tags"]["shift"]: row[1] for s in panel.series for row in s["values"]}
    plant = filled.plants[0]
    want: dict[str, float] = {}
    for machine in plant.machines:
        for part in data.downtime_parts(plant, machine, filled.window):
            if part.reason == "unclassified":
                want[part.shift] = want.get(part.shift, 0) + part.duration_s / 60
    # one unclassified starvation per machine (data.downtime_parts), on every line
    assert got == want and sum(want.values()) == len(plant.machines) * data.STATE_STEP_S / 60


def test_collector_loss_panel_shows_the_latest_lost_and_late_counts(filled: Filled) -> None:
    outcomes = verify_dashboard(filled.client, DASHBOARDS["system-health.json"],
                                filled.window.from_ms, filled.window.to_ms)
    panel = next(o for o in outcomes if o.label.endswith("(collector count)"))
    last = data.stats_snapshots(filled.window)[-1][1]
    assert last.lost > 0 and last.late > 0
    assert {s["tags"]["site"] for s in panel.series} == set(filled.sites)
    for s in panel.series:
        rows = [dict(zip(s["columns"], row, strict=True)) for row in s["values"]]
        final = [r for r in rows if r["lost"] is not None][-1]
        assert (final["lost"], final["late"]) == (last.lost, last.late)


def _alarm_outcomes(filled: Filled, name: str, selection: dict[str, str | list[str]]
                    ) -> dict[str, Any]:
    outcomes = verify_dashboard(filled.client, DASHBOARDS[name], filled.window.from_ms,
                                filled.window.to_ms, {"site": [filled.sites[0]], **selection})
    return {o.label.split(" / ", 1)[1]: o for o in outcomes}


def _rows(outcome: Any) -> list[dict[str, Any]]:
    return [{**s.get("tags", {}), **dict(zip(s["columns"], row, strict=True))}
            for s in outcome.series for row in s["values"]]


def test_alarm_panels_show_active_alarms_flood_and_shifts(filled: Filled) -> None:
    """Against the rule engine's own transitions for the stored states (data.py): the
    active table (normal rows dropped as its transformation does), raises per line and
    10 minutes, raises per shift."""
    plant = filled.plants[0]
    records = data.alarm_records(plant, filled.window)
    latest = {r.instance.machine: r.transition.to_state for r in records}
    raised = [r for r in records if r.transition.kind == "raise"
              and r.transition.to_state == "active_unack"
              and filled.window.from_ms <= r.transition.at * 1000 <= filled.window.to_ms]
    panels = _alarm_outcomes(filled, "alarms.json", {})
    active = {(r["machine"], r["state"]) for r in _rows(panels["Active alarms"])
              if r["state"] != "normal"}
    assert active == {(m, s) for m, s in latest.items() if s != "normal"} and active
    flood = {(r["line"], r["time"]): r["alarms"] for r in _rows(
        panels["Alarms per operator per 10 min (ISA-18.2 flood: > 10)"]) if r["alarms"]}
    want: dict[tuple[str, int], int] = {}
    for r in raised:
        bucket = (plant.machines[r.instance.machine].line,
                  int(r.transition.at * 1000) // 600_000 * 600_000)
        want[bucket] = want.get(bucket, 0) + 1
    assert flood == want and sum(want.values()) == len(raised) > 4
    shift_name = ShiftCalendar.of(plant).shift_name
    per_shift = {r["shift"]: r["alarms"] for r in _rows(panels["Alarms raised per shift"])}
    want_shift: dict[str, int] = {}
    for r in raised:
        name = shift_name(round(r.transition.at * 1000))
        want_shift[name] = want_shift.get(name, 0) + 1
    assert per_shift == want_shift


def test_alarm_annotations_mark_the_selected_machines_transitions(filled: Filled) -> None:
    panels = _alarm_outcomes(filled, "machine-detail.json",
                             {"line": filled.lines[0], "machine": "press1"})
    rows = _rows(panels["annotation Alarms"])
    assert {r["machine"] for r in rows} == {"press1"}
    kinds = [r["kind"] for r in sorted(rows, key=lambda r: r["time"])]
    assert kinds[0] == "raise" and "clear" in kinds
    assert [(r["by"], r["comment"]) for r in rows if r["kind"] == "ack"] == [
        (data.ALARM_ACK_BY, "seen")]
    for line in filled.plants[0].lines:
        flow = _alarm_outcomes(filled, "line-flow.json", {"line": line.id})
        assert {r["machine"] for r in _rows(flow["annotation Alarms"])} == set(line.stations)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_counts_of_parts_are_whole_parts(filled: Filled, name: str) -> None:
    """Rollups hold fractions of parts (data.minute_agg); a panel that shows a count of
    parts (not a rate per hour) shows whole parts, as the API and MQTT do."""
    outcomes = verify_dashboard(filled.client, DASHBOARDS[name], filled.window.from_ms,
                                filled.window.to_ms)
    counted = 0
    for outcome in outcomes:
        for series in outcome.series:
            for i, column in enumerate(series.get("columns", [])):
                if column in PART_COUNTS:
                    values = [row[i] for row in series["values"] if row[i] is not None]
                    counted += len(values)
                    assert all(float(v).is_integer() for v in values), (outcome.label, values[:5])
    assert counted or name not in ("machine-detail.json", "plant-overview.json",
                                   "line-flow.json")


PART_COUNTS = {"produced", "scrap", "wip", "parts", "inflow", "outflow_good", "change"}


def test_a_range_without_events_leaves_only_event_panels_empty(filled: Filled) -> None:
    """Over a range after the data (no stop, no alarm, no sample), the panels that list
    events (downtime log and Pareto, alarm tables, annotations) are empty and that is
    not a problem; every panel over measured data still reports `no series`."""
    after = filled.window.to_ms + 3600_000
    events = measured = 0
    for name, model in DASHBOARDS.items():
        selection = {"site": [filled.sites[0]], "line": filled.lines[0], "machine": "press1"}
        for outcome, query in zip(
                verify_dashboard(filled.client, model, after, after + 600_000, selection)[
                    -len(panel_queries(model) + annotation_queries(model)):],
                panel_queries(model) + annotation_queries(model), strict=True):
            assert outcome.label == query.label
            if outcome.series:
                continue  # a query not bound to the range (e.g. the latest state)
            if query.lists_events:
                events += 1
                assert outcome.problems == [], (name, outcome.label)
            else:
                measured += 1
                assert outcome.problems == ["no series"], (name, outcome.label)
    assert events and measured
    assert {q.panel for m in DASHBOARDS.values() for q in panel_queries(m)
            if q.lists_events} >= {"Downtime log", "Downtime by classified reason (Pareto, s)"}
