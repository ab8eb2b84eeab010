"""The agent on a damaged outbox, as a real process and against the real mosquitto: a
file that cannot be opened stops the start with one clear line; rows that cannot be
published are quarantined while everything else is published; a new outbox file starts
a new stream epoch."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from shopfloor.edge.store import Batch, Message, Store
from shopfloor.shared.enums import QueueFullPolicy
from tests.edge.conftest import machine_spec, plant_data, write_plant
from tests.edge.test_outbox_disk import corrupt_table_page
from tests.harness.services import free_port

SHOPFLOOR = str(Path(sys.executable).with_name("shopfloor"))


def start_fails(plant: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOPFLOOR, "edge", str(plant), "--agent", "edge1"],
        capture_output=True, text=True, timeout=60, check=False,
    )


def seeded_outbox(path: Path, rows: int = 20) -> None:
    store = Store(path, 1_000_000, QueueFullPolicy.DROP_OLDEST)
    topic = "shopfloor/v1/site/line1/m1/telemetry"
    store.commit(Batch(messages=[Message(topic, b"{}", sample=True)] * rows, seqs={"m1": 19}))
    store.close()


def test_an_outbox_that_cannot_be_opened_stops_the_start_with_one_line(
    tmp_path: Path, unique_site: str, modbus_server: Any
) -> None:
    state = tmp_path / "state"
    data = plant_data(unique_site, free_port(), {"m1": machine_spec(modbus_server.port)}, state)
    plant = write_plant(tmp_path / "plant.yaml", data)
    outbox = state / "outbox.sqlite3"
    seeded_outbox(outbox)
    corrupt_table_page(outbox, "streams")
    damaged = start_fails(plant)
    (outbox.parent / "foreign").write_text("these are my notes, not a database\n" * 200)
    data["agents"][0]["queue"] = {"path": str(outbox.parent / "foreign")}
    foreign = start_fails(write_plant(tmp_path / "plant2.yaml", data))
    data["agents"][0]["queue"] = {"path": str(tmp_path)}  # a directory
    directory = start_fails(write_plant(tmp_path / "plant3.yaml", data))
    for result in (damaged, foreign, directory):
        assert result.returncode == 2, result
        assert "Traceback" not in result.stderr
        lines = [line for line in result.stderr.splitlines() if "cannot open" in line]
        assert len(lines) == 1, result.stderr
    assert "malformed" in damaged.stderr and str(outbox) in damaged.stderr
    assert "not a database" in foreign.stderr


def test_bad_rows_are_quarantined_and_publishing_goes_on(
    mosquitto: Any,
    unique_site: str,
    modbus_server: Any,
    tmp_path: Path,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    state = tmp_path / "state"
    outbox = state / "outbox.sqlite3"
    seeded_outbox(outbox, rows=5)
    db = sqlite3.connect(outbox)
    db.execute("UPDATE outbox SET payload = 'not a blob' WHERE id = 2")
    db.execute("UPDATE outbox SET topic = X'00ff' WHERE id = 4")
    db.execute("UPDATE outbox SET topic = ? WHERE id = 5", ("t/" * 40_000,))  # paho refuses it
    db.commit()
    db.close()
    seeded = Store(outbox, 1_000_000, QueueFullPolicy.DROP_OLDEST)
    seeded_epoch = seeded.epoch
    seeded.close()
    metrics_port = free_port()
    data = plant_data(
        unique_site, mosquitto.port, {"m1": machine_spec(modbus_server.port)}, state,
        metrics_port=metrics_port,
    )
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/+/+/telemetry")
    agent = run_agent(data)
    rec.wait_for(lambda: len(rec.payloads("telemetry")) >= 10)
    registry = agent.agent.metrics.registry
    assert registry.get_sample_value("shopfloor_edge_quarantined_total") == 3
    health = httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5)
    assert health.status_code == 200, health.text
    assert health.json()["problems"] == []
    polled = rec.payloads("telemetry")
    seqs = [p["seq"] for p in polled]
    assert seqs[:10] == list(range(20, 30))  # the seeded seq goes on
    assert {p["epoch"] for p in polled} == {seeded_epoch}
    agent.stop()
    db = sqlite3.connect(outbox)
    kept = db.execute("SELECT id, reason FROM quarantine ORDER BY id").fetchall()
    assert [k[0] for k in kept] == [2, 4, 5]
    assert "refused by the MQTT client" in kept[2][1]
    db.close()
