"""Nothing lost, nothing unrecognisable duplicated: sequence numbers stay gap-free
across a broker restart and across kill -9 of the agent process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.edge.conftest import machine_spec, plant_data, write_plant
from tests.harness.services import free_port

SHOPFLOOR = str(Path(sys.executable).with_name("shopfloor"))


def assert_gap_free(samples: list[dict[str, Any]]) -> None:
    """Every seq from 0 to the last arrived; a repeated seq is the very same sample
    (a restart that reused a seq for a new sample would show two different ones)."""
    assert samples, "no telemetry"
    by_seq: dict[int, list[dict[str, Any]]] = {}
    for sample in samples:
        by_seq.setdefault(sample["seq"], []).append(sample)
    assert sorted(by_seq) == list(range(max(by_seq) + 1)), f"gaps in {sorted(by_seq)}"
    for seq, copies in by_seq.items():
        assert all(c == copies[0] for c in copies), f"seq {seq} names different samples"


def test_gap_free_across_a_broker_restart(
    own_mosquitto: Any,
    unique_site: str,
    modbus_server: Any,
    tmp_path: Path,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    data = plant_data(
        unique_site,
        own_mosquitto.port,
        {"m1": machine_spec(modbus_server.port)},
        tmp_path / "state",
    )
    rec = recorder_factory(own_mosquitto.port, f"shopfloor/v1/{unique_site}/+/+/telemetry")
    rec.client.reconnect_delay_set(1, 1)
    agent = run_agent(data)
    rec.wait_for(lambda: len(rec.payloads("telemetry")) >= 5)
    own_mosquitto.stop()
    stopped_at = time.time()
    time.sleep(1.5)  # ~7 polls go to the outbox only
    own_mosquitto.start()
    rec.wait_for(
        lambda: any(t["ts"] > _iso(stopped_at + 2.0) for t in rec.payloads("telemetry")),
        timeout_s=20,
    )
    agent.stop()
    time.sleep(0.3)
    assert_gap_free(rec.payloads("telemetry"))


def _iso(epoch_s: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


def start_agent(plant: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [SHOPFLOOR, "edge", str(plant), "--agent", "edge1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SHOPFLOOR_LOG_LEVEL": "INFO"},
        )


def test_gap_free_across_kill_9_and_restart_of_the_agent(
    mosquitto: Any,
    unique_site: str,
    modbus_server: Any,
    tmp_path: Path,
    recorder_factory: Any,
) -> None:
    metrics_port = free_port()
    plant = write_plant(
        tmp_path / "plant.yaml",
        plant_data(
            unique_site,
            mosquitto.port,
            {"m1": machine_spec(modbus_server.port)},
            tmp_path / "state",
            metrics_port=metrics_port,
        ),
    )
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    log = tmp_path / "agent.log"
    proc = start_agent(plant, log)
    try:
        rec.wait_for(lambda: len(rec.payloads("/m1/telemetry")) >= 5, timeout_s=20)
        health = httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["devices_online"] == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        before = max(t["seq"] for t in rec.payloads("/m1/telemetry"))
        # the broker sends the last will as soon as the connection drops
        rec.wait_for(lambda: [s for s in rec.payloads("/edge1/status") if not s["online"]])

        proc = start_agent(plant, log)
        rec.wait_for(
            lambda: max(t["seq"] for t in rec.payloads("/m1/telemetry")) >= before + 5, timeout_s=20
        )
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'shopfloor_edge_polls_total{machine="m1"}' in metrics
        assert "shopfloor_edge_published_total" in metrics
        assert "shopfloor_edge_devices_online 1.0" in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    statuses = rec.wait_for(
        lambda: (
            [s["online"] for s in rec.payloads("/edge1/status")][-1:] == [False]
            and rec.payloads("/edge1/status")
        )
    )
    assert [s["online"] for s in statuses][:2] == [True, False]
    assert_gap_free(rec.payloads("/m1/telemetry"))
