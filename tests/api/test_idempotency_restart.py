"""Idempotency-Key answers survive an API restart: the real `shopfloor api` process is
killed (-9) and started again on the same state folder, on a real mosquitto and InfluxDB;
the edge stand-in (a real MQTT client on the command topic) counts what reaches it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.api.harness import (
    COMMAND_TIMEOUT_S,
    ApiProcess,
    make_keys,
    plant_data,
)

SETPOINT = "/api/v1/machines/pack1/setpoint"


class RestartRig(ApiProcess):
    def post(self, body: dict[str, Any], key: str) -> httpx.Response:
        return httpx.post(f"{self.url}{SETPOINT}", json=body, timeout=30,
                          headers={"X-API-Key": self.keys["admin"], "Idempotency-Key": key})

    def kill_and_restart(self) -> None:
        self.api.kill()
        self.api.start()

    def commands_for(self, value: Any) -> int:
        return sum(1 for c in self.edge.received if c.point == "speed_pct" and c.value == value)


@pytest.fixture
def rig(mosquitto: Any, influxdb: Any, tmp_path: Path) -> Iterator[RestartRig]:
    made = RestartRig.create(tmp_path, mosquitto.port, influxdb.url, COMMAND_TIMEOUT_S)
    try:
        made.api.start()
        yield made
    finally:
        made.close()


def test_retry_after_kill_9_is_replayed_not_sent_again(rig: RestartRig) -> None:
    key, body = uuid.uuid4().hex, {"point": "speed_pct", "value": 77}
    first = rig.post(body, key)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "done" and "Idempotent-Replayed" not in first.headers
    assert rig.commands_for(77) == 1

    rig.kill_and_restart()
    again = rig.post(body, key)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert rig.commands_for(77) == 1, "a retry after a restart must not act twice"
    assert (Path(rig.data["api"]["state_dir"]) / "idempotency.sqlite").is_file()


def test_same_key_other_request_after_restart_is_refused(rig: RestartRig) -> None:
    key = uuid.uuid4().hex
    assert rig.post({"point": "speed_pct", "value": 66}, key).status_code == 200
    rig.kill_and_restart()
    other = rig.post({"point": "speed_pct", "value": 67}, key)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert rig.commands_for(66) == 1 and rig.commands_for(67) == 0


def test_unusable_state_dir_stops_the_start_with_one_line(tmp_path: Path, mosquitto: Any,
                                                          influxdb: Any) -> None:
    data = plant_data(tmp_path, mosquitto.port, influxdb.url, make_keys(), 1.0)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data["api"]["state_dir"] = str(blocker / "state")
    plant = tmp_path / "plant.yaml"
    plant.write_text(yaml.safe_dump(data))
    done = subprocess.run([sys.executable, "-m", "shopfloor.cli", "api", str(plant)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "api.state_dir" in line and str(blocker / "state") in line
