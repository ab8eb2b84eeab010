"""`shopfloor api` and `shopfloor api-key` as real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from shopfloor.api.security import hash_key
from tests.api.harness import make_keys, plant_data, wait_for

CLI = [sys.executable, "-m", "shopfloor.cli"]


def test_api_key_prints_a_key_and_its_hash_line() -> None:
    out = subprocess.run([*CLI, "api-key", "operator", "--name", "mes", "--line", "line1"],
                         capture_output=True, text=True, check=True).stdout
    secret = out.splitlines()[0].rsplit(" ", 1)[1]
    entry = yaml.safe_load(out.split("api.keys:\n", 1)[1])[0]
    assert entry == {"name": "mes", "role": "operator", "hash": hash_key(secret),
                     "lines": ["line1"]}


def test_api_refuses_placeholder_keys_outside_dev_mode(tmp_path: Path, mosquitto: Any,
                                                       influxdb: Any) -> None:
    data = plant_data(tmp_path, mosquitto.port, influxdb.url, make_keys(), 1.0)
    index = len(data["api"]["keys"])
    data["api"]["keys"].append({"name": "demo", "role": "admin", "hash": hash_key("changeme")})
    plant = tmp_path / "plant.yaml"
    plant.write_text(yaml.safe_dump(data))
    done = subprocess.run([*CLI, "api", str(plant)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"api.keys[{index}] (demo) is a placeholder secret" in done.stderr


def test_api_serves_and_stops_on_sigterm(tmp_path: Path, mosquitto: Any, influxdb: Any) -> None:
    keys = make_keys()
    data = plant_data(tmp_path, mosquitto.port, influxdb.url, keys, 1.0)
    plant = tmp_path / "plant.yaml"
    plant.write_text(yaml.safe_dump(data))
    url = f"http://127.0.0.1:{data['api']['port']}"
    proc = subprocess.Popen([*CLI, "api", str(plant)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 20, "API healthy")
        plant_view = httpx.get(f"{url}/api/v1/plant", headers={"X-API-Key": keys["viewer"]})
        assert plant_view.status_code == 200 and plant_view.json()["site"] == data["site"]["id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status shows it
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output
    assert not any(secret in output for secret in keys.values())
