"""The `shopfloor` command on user input: domain errors end in one line and exit 1 (never
a traceback), wherever they are raised; `oee` picks the current shift by itself; dev.sh
refuses unknown commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.plants import example_data, relocate, write_plant
from tests.harness.services import InfluxDB, free_port

REPO = Path(__file__).parents[2]


def shopfloor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shopfloor.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def example(tmp_path: Path, influxdb: InfluxDB) -> Path:
    data = relocate(example_data(), tmp_path, free_port(), influxdb.url)
    return write_plant(data, tmp_path / "plant.yaml")


@pytest.mark.parametrize(("args", "says"), [
    (["--machine", "press1", "--shift", "nigth", "--date", "2026-12-04"], "no shift 'nigth'"),
    (["--machine", "press1", "--shift", "nigth"], "no shift 'nigth'"),
    (["--machine", "nosuch"], "nosuch"),
    (["--line", "nosuch"], "nosuch"),
])
def test_oee_errors_are_one_line(example: Path, args: list[str], says: str) -> None:
    line = one_line_error(shopfloor("oee", str(example), *args))
    assert says in line and line.startswith("shopfloor oee: [kpi")


def test_oee_day_without_the_shift_is_one_line(tmp_path: Path, influxdb: InfluxDB) -> None:
    data = relocate(example_data(), tmp_path, free_port(), influxdb.url)
    data["calendar"]["shifts"][0]["days"] = ["mon"]
    plant = write_plant(data, tmp_path / "plant.yaml")
    # 2026-12-04 is a Friday
    line = one_line_error(shopfloor("oee", str(plant), "--machine", "press1",
                                    "--shift", "early", "--date", "2026-12-04"))
    assert "no shift 'early' on 2026-12-04" in line


def test_oee_without_a_window_reports_the_current_shift(example: Path) -> None:
    result = shopfloor("oee", str(example), "--machine", "press1", "--json")
    assert result.returncode == 0, result.stderr
    assert '"shift": "20' in result.stdout  # e.g. "2026-12-03/night": an instance key


def test_a_missing_plant_file_or_database_is_one_line(tmp_path: Path) -> None:
    data = relocate(example_data(), tmp_path, free_port(), f"http://127.0.0.1:{free_port()}")
    plant = write_plant(data, tmp_path / "plant.yaml")
    line = one_line_error(shopfloor("oee", str(plant), "--machine", "press1"))
    assert line.startswith("shopfloor oee: [kpi store]")
    assert shopfloor("check", str(tmp_path / "none.yaml")).returncode == 2


def dev(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOPFLOOR_VENV": sys.prefix}
    return subprocess.run([str(REPO / "dev.sh"), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_dev_sh_unknown_command_exits_2_with_help() -> None:
    result = dev("stauts")
    assert result.returncode == 2
    assert "unknown command 'stauts'" in result.stderr and "./dev.sh up" in result.stderr
    helped = dev("help")
    assert helped.returncode == 0 and "./dev.sh status" in helped.stdout
    assert "set -euo" not in helped.stdout


def test_dev_sh_status_of_an_empty_run(tmp_path: Path) -> None:
    env = {**os.environ, "SHOPFLOOR_VENV": sys.prefix, "SHOPFLOOR_RUN_DIR": str(tmp_path)}
    result = subprocess.run([str(REPO / "dev.sh"), "status"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0 and "nothing running" in result.stdout
