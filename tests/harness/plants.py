"""Plant files for tests: the example plant, moved onto free loopback ports and a temp
folder, with a unique site id so that tests sharing a broker never see each other."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.harness.services import free_port

EXAMPLE = Path(__file__).parents[2] / "deploy" / "plant.example.yaml"
REPLAY_MAX_AGE_S = 20 * 365 * 86400.0
"""Tests replay fixed dates (2026-01-01, 2026-11-25, ...): the admission rule's age bound
(default 30 days) must not turn them into dead letters as the calendar moves on. Tests
of the rule itself set `admission` explicitly."""


def example_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    data.setdefault("admission", {"max_age_s": REPLAY_MAX_AGE_S})
    return data


def relocate(
    data: dict[str, Any],
    workdir: Path,
    broker_port: int,
    influx_url: str,
    database: str | None = None,
) -> dict[str, Any]:
    """Point `data` at the test's broker and database, free ports for Modbus, metrics and
    the API, state under `workdir`, and a unique site id."""
    site = f"t{uuid.uuid4().hex[:8]}"
    data["site"]["id"] = site
    data["broker"] = {"host": "127.0.0.1", "port": broker_port}
    data["database"] = {"url": influx_url, "database": database or f"db_{site}"}
    ports: dict[int, int] = {}
    for machine in data["machines"].values():
        conn = machine["connection"]
        if conn.get("protocol") == "opcua":
            old = int(conn["endpoint"].rsplit(":", 1)[1].split("/")[0])
            conn["endpoint"] = f"opc.tcp://127.0.0.1:{ports.setdefault(old, free_port())}/"
        elif conn.get("transport", "tcp") != "rtu":
            conn["host"] = "127.0.0.1"
            conn["port"] = ports.setdefault(conn["port"], free_port())
    for agent in data.get("agents", []):
        agent["state_dir"] = str(workdir / f"edge-{agent['id']}")
        agent["metrics_port"] = free_port()
    data.setdefault("collector", {})
    data["collector"]["metrics_port"] = free_port()
    data["collector"]["client_id"] = f"collector-{site}"
    data.setdefault("api", {})
    data["api"]["port"] = free_port()
    if "alarms" in data:  # `shopfloor alarms` serves /healthz there: two runs at once collided
        data["alarms"]["metrics_port"] = free_port()
    return data


def write_plant(data: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def example_plant_for(
    workdir: Path, broker_port: int, influx_url: str, database: str | None = None
) -> Path:
    """The example plant relocated for a test, written to workdir/plant.yaml."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = relocate(example_data(), workdir, broker_port, influx_url, database)
    return write_plant(data, workdir / "plant.yaml")



def protocol_of(machine: dict[str, Any]) -> str:
    """A plant file machine's field protocol (`modbus` when its connection names none)."""
    return str(machine["connection"].get("protocol", "modbus"))


def keep_lines(data: dict[str, Any], keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """`data` cut down to the lines `keep` accepts (given the line and, under
    "protocols", its stations' protocols): the other lines' machines leave the
    machines, the agents and the per-line and per-machine settings."""
    kept = [line for line in data["lines"]
            if keep({**line, "protocols": {protocol_of(data["machines"][s])
                                           for s in line["stations"]}})]
    assert kept, "no line left"
    machines = {s for line in kept for s in line["stations"]}
    data["lines"] = kept
    data["machines"] = {m: v for m, v in data["machines"].items() if m in machines}
    for agent in data.get("agents", []):
        agent["machines"] = [m for m in agent["machines"] if m in machines]
    data["agents"] = [a for a in data.get("agents", []) if a["machines"]]
    lines = {line["id"] for line in kept}
    for section in ("downtime", "alarms"):
        settings = data.get(section, {})
        for key, ids in (("lines", lines), ("machines", machines)):
            if key in settings:
                settings[key] = {k: v for k, v in settings[key].items() if k in ids}
    return data
