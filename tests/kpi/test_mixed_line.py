"""The example plant's mixed line end to end: the simulator serves frame1 over Modbus TCP
and fit1 over OPC UA (subscription mode), one edge agent reads both, mosquitto, the
collector with its live KPI sink, InfluxDB, all real processes; then `shopfloor oee`
over a window. Every number is checked against what the simulated machines did in that
window: the simulator runs from a known origin and seed, and `sim.history.History`
replays the very same model offline (the simulator's model is the History's, continued:
docs/simulator.md)."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shopfloor.cli import main
from shopfloor.shared.enums import MachineState
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import Plant
from shopfloor.sim.history import History
from tests.harness.plants import example_data, keep_lines, relocate, write_plant
from tests.harness.processes import pipeline
from tests.harness.services import InfluxDB, Mosquitto

SEED = 11
WINDOW_S = 40
"""The OEE window: long enough for both machines to make parts and change state."""
STEP_S = 0.05
"""The offline replay's resolution (the simulator ticks every 0.1 s)."""


def mixed_line_data(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> dict[str, Any]:
    """The example plant cut down to its mixed line (its machines speak different
    protocols), one shift around now, in UTC."""
    data = relocate(example_data(), tmp_path, mosquitto.port, influxdb.url)
    keep_lines(data, lambda line: len(line["protocols"]) > 1)
    assert len(data["lines"]) == 1
    now = dt.datetime.now(dt.UTC)
    data["site"]["timezone"] = "UTC"
    data["calendar"] = {"shifts": [{
        "name": "mixed", "start": (now - dt.timedelta(hours=1)).strftime("%H:%M:%S"),
        "end": (now + dt.timedelta(hours=1)).strftime("%H:%M:%S")}]}
    return data


@dataclass
class Truth:
    """What one simulated machine did in [start_s, end_s)."""

    total: int = 0
    reject: int = 0
    running_s: float = 0.0
    changes: int = 0
    product: int | None = None
    """The product code the machine made (the demo changes none)."""
    timeline: list[tuple[float, MachineState, int]] = field(default_factory=list)
    """(instant, state, total count) at every replay step, from a little before start_s."""

    def states_between(self, lo_s: float, hi_s: float) -> set[MachineState]:
        return {s for t, s, _ in self.timeline if lo_s <= t <= hi_s}

    def totals_between(self, lo_s: float, hi_s: float) -> set[int]:
        return {n for t, _, n in self.timeline if lo_s <= t <= hi_s}


def replay(plant: Plant, origin_s: float, start_s: float, end_s: float) -> dict[str, Truth]:
    """The simulated machines from `origin_s` (the simulator's --origin), replayed."""
    history = History(plant, SEED, origin_s)
    models = history.model.machines
    t = start_s - 5.0
    history.model.advance(t)
    truths = {mid: Truth() for mid in models}
    first: dict[str, tuple[int, int]] = {}
    while t < end_s + 5.0:
        for mid, model in models.items():
            state, truth = model.state()[0], truths[mid]
            if truth.timeline and start_s <= t < end_s:
                truth.changes += state is not truth.timeline[-1][1]
            truth.timeline.append((t, state, model.total))
            if start_s <= t < end_s:
                first.setdefault(mid, (model.total, model.reject))
                truth.running_s += STEP_S * (state is MachineState.RUNNING)
            if abs(t - end_s) < STEP_S / 2:
                truth.total = model.total - first[mid][0]
                truth.reject = model.reject - first[mid][1]
                truth.product = model.controls.product
        t = round(t + STEP_S, 6)
        history.model.advance(t)
    return truths


def stored(influxdb: InfluxDB, database: str, query: str) -> list[dict[str, Any]]:
    return [dict(zip(s["columns"], row, strict=True)) | s.get("tags", {})
            for s in influxdb.query(query, database=database) for row in s["values"]]


def wait_for_data_until(influxdb: InfluxDB, plant: Plant, end_ms: int, timeout_s: float) -> None:
    """Until every machine has telemetry stamped at or after `end_ms`."""
    deadline = time.monotonic() + timeout_s
    query = f"SELECT last(\"_seq\") FROM telemetry WHERE time >= {end_ms}ms GROUP BY machine"
    while time.monotonic() < deadline:
        if len(influxdb.query(query, database=plant.database.database)) == len(plant.machines):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no telemetry after {end_ms} for every machine of {list(plant.machines)}")


def oee_of(plant_file: Path, machine: str, start_s: float, end_s: float) -> dict[str, Any]:
    iso = [dt.datetime.fromtimestamp(t, dt.UTC).isoformat() for t in (start_s, end_s)]
    result = CliRunner().invoke(main, ["oee", str(plant_file), "--machine", machine,
                                       "--start", iso[0], "--end", iso[1], "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["result"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_modbus_and_an_opcua_machine_of_one_line_give_the_simulators_oee(
        mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    data = mixed_line_data(tmp_path, mosquitto, influxdb)
    plant_file = write_plant(data, tmp_path / "plant.yaml")
    plant = load_plant(plant_file)
    assert {m.connection.protocol for m in plant.machines.values()} == {"modbus", "opcua"}
    origin_s = math.floor(time.time())
    procs = pipeline(plant_file, plant, tmp_path)
    procs[0].args += ["--seed", str(SEED), "--origin", str(origin_s)]
    database = plant.database.database
    try:
        for proc in procs:
            proc.start(timeout_s=90)
        wait_for_data_until(influxdb, plant, 0, 90)  # both machines publish
        start_s = math.ceil(time.time()) + 2.0  # a window that begins with data before it
        end_s = start_s + WINDOW_S
        time.sleep(max(0.0, end_s - time.time()))
        wait_for_data_until(influxdb, plant, int(end_s * 1000) + 2000, 60)
    finally:
        for proc in reversed(procs):
            proc.stop()
    truths = replay(plant, origin_s, start_s, end_s)
    window = f"time >= {int(start_s * 1000)}ms AND time < {int(end_s * 1000)}ms"
    for mid, machine in plant.machines.items():
        truth = truths[mid]
        where = f"machine = '{mid}' AND {window}"
        # samples: gap-free, each count the machine's at the sample's instant (a Modbus
        # poll reads the last tick's image: up to a tick and a poll late)
        samples = stored(influxdb, database,
                         f'SELECT "_seq", "total_count" FROM telemetry WHERE {where}')
        assert len(samples) >= WINDOW_S / machine.poll_interval_s * 0.75, (mid, len(samples))
        seqs = [int(s["_seq"]) for s in samples]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), mid
        for s in samples:
            at = s["time"] / 1000
            assert s["total_count"] in truth.totals_between(at - 1.2, at + 0.1), (mid, s)
        # states: each stored change is a state the machine was in just before
        changes = stored(influxdb, database, f'SELECT "state" FROM machine_state WHERE {where}')
        for change in changes:
            at = change["time"] / 1000
            assert change["state"] in truth.states_between(at - 1.2, at + 0.1), (mid, change)
        # counts and OEE over the window
        result = oee_of(plant_file, mid, start_s, end_s)
        assert result["pot_s"] == pytest.approx(WINDOW_S)
        assert result["coverage"] == pytest.approx(1.0, abs=0.05), (mid, result)
        assert truth.total > 0, f"{mid} made no part in the window: pick another SEED"
        assert abs(result["pq"] - truth.total) <= 2, (mid, result["pq"], truth)
        assert abs(result["sq"] - truth.reject) <= 1, (mid, result["sq"], truth)
        late_s = machine.poll_interval_s + 0.3  # a change is seen up to a poll late
        assert abs(result["apt_s"] - truth.running_s) <= late_s * (truth.changes + 1), (
            mid, result["apt_s"], truth.running_s, truth.changes)
        cycle_s = next(p.ideal_cycle_time_s for p in machine.products
                       if p.code == truth.product)
        want_oee = cycle_s * (truth.total - truth.reject) / WINDOW_S  # FPT / PBT
        assert result["oee"] == pytest.approx(want_oee, abs=3 * cycle_s / WINDOW_S), (
            mid, result["oee"], want_oee)
