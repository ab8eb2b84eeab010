"""Plant files for tests: the example plant, moved onto free loopback ports and a temp
folder, with a unique site id so that tests sharing a broker never see each other."""

from __future__ import annotations

import uuid
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


def mixed_example_data() -> dict[str, Any]:
    """The example plant plus a mixed line, `assembly`: frame1 (Modbus, on the example's
    Modbus port) feeding fit1 (OPC UA, subscription mode, the simulator's OPC UA server;
    points by NodeId and by browse path, a datetime), both polled by the example's agent."""
    data = example_data()
    press = data["machines"]["press1"]
    frame = {**press, "name": "Frame press",
             "connection": {**press["connection"], "device_id": 7},
             "products": [{"id": "F1", "code": 1, "ideal_cycle_time_s": 1.8},
                          {"id": "F2", "code": 2, "ideal_cycle_time_s": 2.2}]}
    nodes = {"total_count": "2:Assembly/2:fit1/2:total_count",
             "reject_count": "2:Assembly/2:fit1/2:reject_count"}
    points = []  # the same names, types and scales: one InfluxDB field type per name
    for point in press["points"]:
        spec = {k: v for k, v in point.items() if k not in ("table", "address", "order")}
        if point["name"] in nodes:
            spec["browse_path"] = nodes[point["name"]]
        else:
            spec["node_id"] = f"ns=2;s=fit1.{point['name']}"
        points.append(spec)
    points.append({"name": "clock", "node_id": "ns=2;s=fit1.clock", "type": "datetime"})
    fit = {**press, "name": "Fitting cell", "points": points, "poll_interval_s": 1.0,
           "connection": {"protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840/",
                          "mode": "subscription", "timeout_s": 2.0},
           "products": [{"id": "F1", "code": 1, "ideal_cycle_time_s": 2.4},
                        {"id": "F2", "code": 2, "ideal_cycle_time_s": 2.9}]}
    for machine in (frame, fit):
        machine["line"] = "assembly"
    frame["points"] = [dict(p, max=2) if p["name"] == "product" else p for p in press["points"]]
    fit["points"] = [dict(p, max=2) if p["name"] == "product" else p for p in fit["points"]]
    data["machines"].update(frame1=frame, fit1=fit)
    data["lines"].append({"id": "assembly", "name": "Assembly line (Modbus and OPC UA)",
                          "stations": ["frame1", "fit1"], "buffer_capacity": {"frame1": 50}})
    data["agents"][0]["machines"] += ["frame1", "fit1"]
    return data
