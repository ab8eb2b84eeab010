"""When `shopfloor local up` brings in history, and from when: at least 8 h and the
current shift so far; skipped when the database already holds telemetry of the site in
that window, or when the simulator or an edge agent already runs. The stocktake at the
origin is what the simulated buffers held then. Real InfluxDB."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from pathlib import Path

import httpx
import pytest

from shopfloor.kpi.aggregate import aggregate
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.kpi.live import to_sample
from shopfloor.kpi.model import KpiMachineSpec, KpiSettings, Sample
from shopfloor.kpi.oee import compute
from shopfloor.kpi.store import KpiStore
from shopfloor.local import backfill
from shopfloor.shared.contract import Telemetry, parse
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from shopfloor.sim.history import History
from tests.edge.drivers.modbus.test_history import T0, plant_in, replay, rows
from tests.harness.plants import example_data, relocate
from tests.harness.services import InfluxDB, free_port

NOW = dt.datetime(2026, 12, 3, 5, 30, tzinfo=dt.UTC).timestamp()  # 06:30 in Berlin


def demo(tmp_path: Path, influxdb: InfluxDB, **shifts: object) -> Plant:
    data = relocate(example_data(), tmp_path, free_port(), influxdb.url)
    for shift in data["calendar"]["shifts"]:
        shift.update(shifts)
    return parse_plant(data)


def test_origin_is_eight_hours_back_or_the_running_shifts_start(tmp_path: Path,
                                                                influxdb: InfluxDB) -> None:
    plant = demo(tmp_path, influxdb)
    assert backfill.origin_for(plant, NOW, 8) == NOW - 8 * 3600
    # 06:30 Berlin: the early shift began at 06:00; 0.25 h back would miss its start
    assert backfill.origin_for(plant, NOW, 0.25) == NOW - 1800
    assert backfill.origin_for(plant, NOW + 0.4, 8) == NOW - 8 * 3600  # whole seconds
    # never older than the collector admits (plant admission.max_age_s, a minute spare)
    tight = parse_plant({**plant.model_dump(mode="json", exclude_none=True),
                         "admission": {"max_age_s": 7200}})
    assert backfill.origin_for(tight, NOW, 8) == NOW - 7200 + 60


def test_backfill_is_wanted_on_an_empty_database_then_skipped(tmp_path: Path,
                                                              influxdb: InfluxDB) -> None:
    plant = demo(tmp_path, influxdb)
    nothing_runs = lambda name: False  # noqa: E731
    assert backfill.decide(plant, 8, nothing_runs, NOW).wanted
    assert "already running" in backfill.decide(plant, 8, lambda n: n == "sim", NOW).reason
    assert backfill.decide(plant, 0, nothing_runs, NOW).reason == "--history-hours 0"

    ts_ms = int((NOW - 3600) * 1000)
    line = f"telemetry,site={plant.site.id},line=line1,machine=press1 _seq=0i {ts_ms}"
    database = plant.database.database
    httpx.post(f"{influxdb.url}/query", params={"q": f'CREATE DATABASE "{database}"'})
    reply = httpx.post(f"{influxdb.url}/write", params={"db": plant.database.database,
                                                        "precision": "ms"}, content=line)
    assert reply.status_code == 204, reply.text
    skipped = backfill.decide(plant, 8, nothing_runs, NOW)
    assert not skipped.wanted and "already holds telemetry" in skipped.reason
    # telemetry older than the window does not count
    assert backfill.decide(plant, 8, nothing_runs, NOW + 8 * 3600).wanted


def test_lines_are_anchored_with_the_simulated_buffers_at_the_origin(
        tmp_path: Path, influxdb: InfluxDB) -> None:
    plant = demo(tmp_path, influxdb)
    origin = NOW - 8 * 3600
    stock = History(plant, 0, origin).stock()
    assert set(stock) == {line.id for line in plant.lines}  # every line has a buffer
    assert backfill.anchor_lines(plant, stock, origin) == len(plant.lines)
    store = KpiStore.open(plant)
    try:
        anchor = store.anchor("line1", int(NOW * 1000))
    finally:
        store.close()
    assert anchor is not None and anchor.ts_ms == int(origin * 1000)
    assert anchor.line_count == sum(stock["line1"].values())
    assert anchor.buffers == stock["line1"]


@pytest.mark.parametrize("factor", [backfill.POLL_FACTOR, 4.0])
def test_the_stretched_history_is_fully_covered_for_the_kpis(tmp_path: Path,
                                                            factor: float) -> None:
    """Polled POLL_FACTOR times less often than live, the history's samples are still
    close enough for the KPI engine to count all its time (coverage 1); stretched
    beyond the engine's gap tolerance (3 poll periods), they would not be."""
    plant = plant_in(tmp_path)
    start, end = T0, T0 + 1200
    replay(plant, History(plant, 5, start), start, end, step_factor=factor)
    by_machine: dict[str, list[Sample]] = {}
    for topic, payload in rows(plant):
        if topic.endswith("/telemetry"):
            sample = to_sample(parse(Telemetry, json.dumps(payload).encode()))
            by_machine.setdefault(topic.split("/")[-2], []).append(sample)
    calendar, settings = ShiftCalendar.of(plant), KpiSettings.of(plant)
    assert settings.gap_factor > backfill.POLL_FACTOR
    coverages = []
    for machine, samples in sorted(by_machine.items()):
        spec = KpiMachineSpec.from_plant(plant, machine)
        [bucket] = aggregate(spec, samples, calendar, int(start * 1000), int(end * 1000),
                             settings=settings, data_end_ms=int(end * 1000))
        coverages.append(compute(bucket.agg, settings).coverage)
    assert len(coverages) == len(plant.agents[0].machines)
    if factor < settings.gap_factor:
        assert coverages == [1.0] * len(coverages)
    else:
        assert all(c is None or c < settings.coverage_null for c in coverages)


def test_machines_the_simulator_does_not_model_get_no_history(tmp_path: Path,
                                                              influxdb: InfluxDB) -> None:
    """An agent may also poll machines the simulator does not serve (a serial RTU line,
    another protocol): the history covers the simulated ones and `up` goes on."""
    data = relocate(example_data(), tmp_path, free_port(), influxdb.url)
    extra = copy.deepcopy(data["machines"]["press1"])
    extra["connection"] = {"transport": "rtu", "device_id": 9,
                           "serial": {"port": "/dev/ttyUSB9", "baudrate": 19200}}
    data["machines"]["press9"] = extra
    data["agents"][0]["machines"].append("press9")
    plant = parse_plant(data)
    now = time.time()
    polls = backfill.run(plant, 0, now - 60, now, lambda text: None)
    machines = {topic.split("/")[-2] for topic, _ in rows(plant)}
    simulated = set(plant.machines) - {"press9"}
    assert machines == simulated
    assert polls >= len(simulated) * 31 and polls % len(simulated) == 0


def test_the_mixed_line_gets_history_for_its_opcua_machine_too(tmp_path: Path,
                                                               influxdb: InfluxDB) -> None:
    """The example plant's mixed line (a Modbus and an OPC UA machine): the history
    covers both protocols, the OPC UA machine's points (and its datetime) read through
    the OPC UA history driver from the simulator's node images."""
    data = relocate(example_data(), tmp_path, free_port(), influxdb.url)
    assert data["machines"]["fit1"]["connection"]["protocol"] == "opcua"
    plant = parse_plant(data)
    now = time.time()
    polls = backfill.run(plant, 0, now - 60, now, lambda text: None)
    samples: dict[str, list[Telemetry]] = {}
    for topic, payload in rows(plant):
        if topic.endswith("/telemetry"):
            sample = parse(Telemetry, json.dumps(payload).encode())
            samples.setdefault(topic.split("/")[-2], []).append(sample)
    assert set(samples) == {"press1", "weld1", "paint1", "pack1", "frame1", "fit1"}
    assert polls >= 6 * 31 and polls % 6 == 0
    fit = samples["fit1"]
    assert [s.seq for s in fit] == list(range(fit[0].seq, fit[0].seq + len(fit)))
    assert all(not s.quality for s in fit)
    first = fit[0].values
    assert isinstance(first["total_count"], int) and isinstance(first["run"], bool)
    assert dt.datetime.fromisoformat(str(first["clock"])).tzinfo is not None
    assert max(s.values["total_count"] for s in fit) > first["total_count"]  # it makes parts
