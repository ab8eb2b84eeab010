"""`shopfloor sim` as a real process (faults from the command line and the HTTP control
endpoint, SIGTERM, port in use) and `shopfloor generate-plant`."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from shopfloor.cli import main
from shopfloor.shared.loader import load_plant
from shopfloor.sim.generate import plant_data
from tests.harness.plants import write_plant
from tests.harness.processes import ComponentProcess, ports_open
from tests.harness.services import free_port
from tests.sim.conftest import example_on_port_data


def test_sim_process_faults_control_endpoint_and_sigterm(tmp_path: Path) -> None:
    port, control = free_port(), free_port()
    plant = write_plant(example_on_port_data(port), tmp_path / "plant.yaml")
    args = [
        "sim",
        str(plant),
        "--seed",
        "4",
        "--speed",
        "5",
        "--fault",
        "press1=silent",
        "--control-port",
        str(control),
    ]
    sim = ComponentProcess("sim", args, tmp_path, ports_open([port, control])).start()
    try:
        with ModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0) as client:
            assert not client.read_holding_registers(0, count=8, device_id=2).isError()
            with pytest.raises(ModbusException):
                client.read_holding_registers(0, count=8, device_id=1)  # silent
        base = f"http://127.0.0.1:{control}"
        assert httpx.get(f"{base}/faults").json() == {"press1": "silent"}
        answer = httpx.post(f"{base}/faults/weld1", params={"mode": "exception"})
        assert answer.json() == {"machine": "weld1", "mode": "exception"}
        assert httpx.post(f"{base}/faults/press1", params={"mode": "normal"}).status_code == 200
        assert httpx.post(f"{base}/faults/nope", params={"mode": "slow"}).status_code == 400
        with ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0) as client:
            assert not client.read_holding_registers(0, count=8, device_id=1).isError()
            failed = client.read_holding_registers(0, count=8, device_id=2)
            assert failed.isError() and failed.exception_code == 4
        state = httpx.get(f"{base}/machines/pack1").json()
        assert state["state"] == "running" and state["code"] == 1
    finally:
        code = sim.stop(signal.SIGTERM, timeout_s=10)
    assert code == 0
    assert "Traceback" not in sim.log_tail(200)


def _run_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopfloor.cli", "sim", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        plant = write_plant(example_on_port_data(port), tmp_path / "plant.yaml")
        result = _run_sim(str(plant))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "sim:" in line]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0] and "in use" in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fault", "press1=loud"], "unknown fault mode"),
        (["--fault", "nope=silent"], "unknown machine"),
        (["--machines", "press1,ghost"], "unknown machine"),
    ],
)
def test_bad_arguments_are_refused_clearly(tmp_path: Path, extra: list[str], message: str) -> None:
    plant = write_plant(example_on_port_data(free_port()), tmp_path / "plant.yaml")
    result = _run_sim(str(plant), *extra)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr


def test_generate_plant_writes_a_valid_plant(tmp_path: Path) -> None:
    out = tmp_path / "big.yaml"
    args = [
        "generate-plant",
        "--machines",
        "250",
        "--points",
        "22",
        "--lines",
        "3",
        "--base-port",
        "6000",
        "--per-port",
        "200",
        "--agents",
        "4",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    check = CliRunner().invoke(main, ["check", str(out)])
    assert check.exit_code == 0, check.output
    assert "3 line(s), 250 machine(s), 4 agent(s)" in check.output
    plant = load_plant(out)
    assert "points: *points" in out.read_text()  # the register map is written once
    assert len(plant.machines) == 250 and len(plant.lines) == 3 and len(plant.agents) == 4
    assert all(len(m.points) == 22 for m in plant.machines.values())
    endpoints = {(m.connection.port, m.connection.device_id) for m in plant.machines.values()}
    assert len(endpoints) == 250
    assert {port for port, _ in endpoints} == {6000, 6001}
    assert sorted(sum((a.machines for a in plant.agents), [])) == sorted(plant.machines)
    assert all(
        m.state and m.counters and m.control.run and m.products for m in plant.machines.values()
    )


def test_generate_plant_refuses_impossible_layouts(tmp_path: Path) -> None:
    args = [
        "generate-plant",
        "--machines",
        "1000",
        "--per-port",
        "1",
        "--base-port",
        "65000",
        "-o",
        str(tmp_path / "x.yaml"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "need ports up to" in result.output


def test_generated_data_gives_each_machine_its_own_map() -> None:
    data = plant_data(machines=3)
    data["machines"]["m1"]["points"][0]["address"] = 99
    assert data["machines"]["m2"]["points"][0]["address"] == 0
