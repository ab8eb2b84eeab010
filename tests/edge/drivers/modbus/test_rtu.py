"""Modbus RTU: on a serial line (a virtual pair from socat, pymodbus's serial server
at the other end) and over TCP through a serial gateway; several devices share the
line, one request at a time."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pymodbus.framer import FramerType

from shopfloor.shared import topics
from tests.edge.conftest import ModbusServer, machine_spec, plant_data


@pytest.fixture
def serial_pair() -> Iterator[tuple[str, str]]:
    socat = shutil.which("socat")
    if socat is None:
        raise RuntimeError("socat is not installed; run ./dev.sh test (installs it via apt)")
    proc = subprocess.Popen(
        [socat, "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"], stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    ptys: list[str] = []
    deadline = time.monotonic() + 10
    while len(ptys) < 2 and time.monotonic() < deadline:
        found = re.search(r"PTY is (\S+)", proc.stderr.readline())
        if found:
            ptys.append(found.group(1))
    assert len(ptys) == 2, "socat did not report two PTYs"
    yield ptys[0], ptys[1]
    proc.terminate()
    proc.wait(5)


def rtu_machine(device_id: int, **connection: Any) -> dict[str, Any]:
    spec = machine_spec(0, device_id)
    spec["connection"] = {"device_id": device_id, "timeout_s": 0.5, **connection}
    return spec


def fill(server: ModbusServer, device_id: int) -> None:
    server.set(device_id, "holding", 0, [1, 0, 1000 * device_id, 1, 20 + device_id])


def check_both_devices(rec: Any, server: ModbusServer, site: str) -> None:
    for device_id, name in ((1, "d1"), (2, "d2")):
        sample = rec.wait_for(
            lambda n=name: [t for t in rec.payloads(f"/{n}/telemetry") if not t["quality"]]
        )[0]
        assert sample["values"]["total_count"] == 1000 * device_id
        assert sample["values"]["speed_pct"] == 20 + device_id
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)).isoformat()
    rec.publish(
        topics.machine_topic(site, "line1", "d2", topics.CMD),
        json.dumps({"id": "rtu1", "point": "speed_pct", "value": 77, "expires_at": expires,
                    "role": "operator"}),
    )
    result = rec.wait_for(lambda: rec.payloads("/d2/cmd/result"))[0]
    assert result["status"] == "done" and result["readback"] == 77
    assert server.get(2, "holding", 4, 1) == [77]


def test_rtu_on_a_serial_line(
    serial_pair: tuple[str, str],
    mosquitto: Any,
    unique_site: str,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    server_end, agent_end = serial_pair
    server = ModbusServer((1, 2), serial_port=server_end).start()
    try:
        fill(server, 1)
        fill(server, 2)
        serial = {"port": agent_end, "baudrate": 19200, "inter_frame_s": 0.005}
        machines = {f"d{i}": rtu_machine(i, transport="rtu", serial=serial) for i in (1, 2)}
        data = plant_data(unique_site, mosquitto.port, machines, tmp_path / "state")
        rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
        run_agent(data)
        check_both_devices(rec, server, unique_site)
    finally:
        server.stop()


def test_rtu_over_tcp_gateway(
    mosquitto: Any,
    unique_site: str,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    server = ModbusServer((1, 2), framer=FramerType.RTU).start()
    try:
        fill(server, 1)
        fill(server, 2)
        machines = {
            f"d{i}": rtu_machine(i, transport="rtu_over_tcp", host="127.0.0.1", port=server.port)
            for i in (1, 2)
        }
        data = plant_data(unique_site, mosquitto.port, machines, tmp_path / "state")
        rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
        run_agent(data)
        check_both_devices(rec, server, unique_site)
    finally:
        server.stop()
