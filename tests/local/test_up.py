"""The README's first command, `./dev.sh up`, run in a temp folder with the example plant
moved onto free ports (and a short history: the full demo is tests/local/test_first_hour.py):
every part becomes healthy, the history reaches InfluxDB, the API answers, a second `up`
starts nothing twice, `./dev.sh down` ends exactly what it started, and an `up` after it
does not bring the history in again."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.harness.plants import example_data, relocate, write_plant
from tests.harness.services import free_port

REPO = Path(__file__).parents[2]
PARTS = ("mosquitto", "influxdb", "sim", "edge-edge1", "collector", "alarms", "api")


def dev(command: str, plant: Path, run_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOPFLOOR_PLANT": str(plant), "SHOPFLOOR_RUN_DIR": str(run_dir),
           "SHOPFLOOR_HISTORY_HOURS": "0.1", "SHOPFLOOR_VENV": sys.prefix,
           "SHOPFLOOR_NO_INSTALL": "1"}
    return subprocess.run(
        [str(REPO / "dev.sh"), command], env=env, capture_output=True, text=True, timeout=240,
    )


def telemetry_count(influx_url: str, database: str) -> int:
    r = httpx.get(f"{influx_url}/query", params={
        "db": database, "q": 'SELECT count("_seq") FROM "telemetry"'})
    series = r.json()["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def started_processes(run_dir: Path) -> list[psutil.Process]:
    procs = []
    for pidfile in (run_dir / "pids").glob("*.json"):
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(json.loads(pidfile.read_text())["pid"]))
    return procs


@pytest.mark.slow
def test_dev_sh_up_runs_everything_and_down_stops_it(tmp_path: Path) -> None:
    influx_url = f"http://127.0.0.1:{free_port()}"
    data = relocate(example_data(), tmp_path, free_port(), influx_url, database="shopfloor")
    plant = write_plant(data, tmp_path / "plant.yaml")
    run_dir = tmp_path / "run"
    try:
        first = dev("up", plant, run_dir)
        assert first.returncode == 0, first.stdout + first.stderr
        for part in PARTS:
            assert f"{part}" in first.stdout and "FAILED" not in first.stdout
        assert "Where to look" in first.stdout
        pids = {p.stem: p for p in (run_dir / "pids").glob("*.json")}
        assert set(pids) == set(PARTS)

        assert "history" in first.stdout and "polls queued" in first.stdout
        history = int(first.stdout.split("polls queued")[0].split()[-1])
        # 0.1 h (or the shift so far) of 4 machines polled every 2 s (backfill.POLL_FACTOR)
        assert history >= 4 * 180
        # up to ~85,000 history samples late in a shift: ~40 s on a quiet machine, over 60 s
        # at load 10 (seen once); a generous wait for real processes, not a speed check
        deadline = time.monotonic() + 180
        while telemetry_count(influx_url, "shopfloor") < history and time.monotonic() < deadline:
            time.sleep(0.5)
        assert telemetry_count(influx_url, "shopfloor") >= history
        health = httpx.get(f"http://127.0.0.1:{data['api']['port']}/healthz", timeout=5)
        assert health.status_code == 200
        state = httpx.get(f"http://127.0.0.1:{data['api']['port']}/api/v1/state",
                          headers={"X-API-Key": "dev-viewer"}, timeout=5)
        assert state.status_code == 200, state.text
        assert "press1" in state.text

        again = dev("up", plant, run_dir)
        assert again.returncode == 0
        assert again.stdout.count("already running   ") == len(PARTS), again.stdout
        assert "history        skipped: the simulator or an edge agent" in again.stdout
    finally:
        procs = started_processes(run_dir)
        down = dev("down", plant, run_dir)
    assert down.returncode == 0
    assert down.stdout.count("stopped") == len(PARTS)
    gone, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive
    assert not list((run_dir / "pids").glob("*.json"))

    try:  # the database keeps what was stored: no second copy of the history
        third = dev("up", plant, run_dir)
        assert third.returncode == 0, third.stdout + third.stderr
        assert "history        skipped: the database already holds" in third.stdout
    finally:
        procs = started_processes(run_dir)
        dev("down", plant, run_dir)
    psutil.wait_procs(procs, timeout=10)
