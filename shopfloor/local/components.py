"""What `shopfloor local up` runs for a plant, in start order, and how each shows health."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from shopfloor.local import grafana as grafana_files
from shopfloor.local.configs import influxdb_conf, mosquitto_conf
from shopfloor.local.runner import RunDir, http_ok, port_open
from shopfloor.shared import influx
from shopfloor.shared.logs import LOG_FILE_ENV
from shopfloor.shared.plant import Plant
from shopfloor.shared.protocols.modbus import ModbusConnection
from shopfloor.shared.protocols.opcua import OpcUaConnection

API_STATE_DIR_ENV = "SHOPFLOOR_API_STATE_DIR"


@dataclass(frozen=True)
class Component:
    name: str
    cmdline: list[str]
    healthy: Callable[[], bool]
    where: str
    reuse_if_healthy: bool = False  # a broker/database already there is used, not started
    timeout_s: float = 30.0
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment

    @property
    def ours(self) -> bool:
        """A shopfloor process (logs through shared.logs), not a foreign service."""
        return self.cmdline[1:3] == ["-m", "shopfloor.cli"]


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise FileNotFoundError(f"{name} is not installed (./dev.sh up installs it with apt)")


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _shopfloor(*args: str) -> list[str]:
    return [sys.executable, "-m", "shopfloor.cli", *args]


def broker(plant: Plant, run: RunDir) -> Component:
    port = plant.broker.port
    conf = run.root / "mosquitto.conf"
    conf.write_text(mosquitto_conf(port, run.data("mosquitto")))
    return Component(
        "mosquitto", [_binary("mosquitto"), "-c", str(conf)], lambda: port_open(port),
        f"mqtt://127.0.0.1:{port}", reuse_if_healthy=True,
    )


def database(plant: Plant, run: RunDir) -> Component:
    url = urlparse(plant.database.url)
    port = url.port or 8086
    conf = run.root / "influxdb.conf"
    conf.write_text(influxdb_conf(port, port + 2, run.data("influxdb")))
    return Component(
        "influxdb", [_binary("influxd"), "-config", str(conf)],
        lambda: influx.responds(f"http://127.0.0.1:{port}"), plant.database.url,
        reuse_if_healthy=True,
    )


def simulator(plant: Plant, plant_path: Path, speed: float, seed: int = 0) -> Component:
    ports = sorted(served_ports(plant))
    return Component(
        "sim", _shopfloor("sim", str(plant_path), "--speed", str(speed), "--seed", str(seed)),
        lambda: all(port_open(p) for p in ports),
        f"127.0.0.1:{','.join(map(str, ports))} ({len(plant.machines)} machines)",
    )


def served_ports(plant: Plant) -> set[int]:
    """The TCP ports the simulator listens on for the plant: its Modbus TCP machines'
    and its OPC UA machines' endpoints."""
    ports = set()
    for machine in plant.machines.values():
        conn = machine.connection
        if isinstance(conn, OpcUaConnection):
            ports.add(conn.host_port[1])
        elif isinstance(conn, ModbusConnection) and conn.host:
            ports.add(conn.port)
    return ports


def _status_health(port: int | None) -> Callable[[], bool]:
    if port is None:
        return lambda: True
    return lambda: http_ok(f"http://127.0.0.1:{port}/healthz")


def edges(plant: Plant, plant_path: Path) -> list[Component]:
    return [
        Component(
            f"edge-{agent.id}", _shopfloor("edge", str(plant_path), "--agent", agent.id),
            _status_health(agent.metrics_port),
            f"http://127.0.0.1:{agent.metrics_port}/metrics" if agent.metrics_port else "",
        )
        for agent in plant.agents
    ]


def collector(plant: Plant, plant_path: Path) -> list[Component]:
    if not _available("shopfloor.collector.cli"):
        return []
    port = plant.collector.metrics_port
    return [Component(
        "collector", _shopfloor("collector", str(plant_path)), _status_health(port),
        f"http://127.0.0.1:{port}/metrics" if port else "",
    )]


def alarms(plant: Plant, plant_path: Path) -> list[Component]:
    """The alarm rule engine (one per site); healthy when its `/healthz` says so (without
    `alarms.metrics_port`: once started). It starts before the edge agents: it judges the
    states of the history as they are published, on their own event time
    (docs/alarms.md), so the demo has alarms too."""
    if not _available("shopfloor.alarms.cli"):
        return []
    port = plant.alarms.metrics_port
    where = f"http://127.0.0.1:{port}/healthz, " if port else ""
    return [Component("alarms", _shopfloor("alarms", str(plant_path)), _status_health(port),
                      f"{where}{len(plant.machines)} machines' alarm rules")]


def api(plant: Plant, plant_path: Path, run: RunDir) -> list[Component]:
    """The API keeps its Idempotency-Key answers under the run folder (data/api) unless
    the plant file or the environment says where."""
    if not _available("shopfloor.api.cli"):
        return []
    base = f"http://{plant.api.host}:{plant.api.port}"
    env: dict[str, str] = {}
    if plant.api.state_dir is None and API_STATE_DIR_ENV not in os.environ:
        env[API_STATE_DIR_ENV] = str(run.data("api"))
    return [Component(
        "api", _shopfloor("api", str(plant_path)), lambda: http_ok(f"{base}/healthz"),
        f"{base}/docs", env=env,
    )]


def grafana(plant: Plant, run: RunDir) -> list[Component]:
    """Grafana with our provisioning, where grafana-server is installed (else nothing)."""
    program, home = grafana_files.binary(), grafana_files.homepath()
    if program is None or home is None:
        return []
    ini = grafana_files.write_config(run, plant.database.url, plant.database.database)
    url = f"http://127.0.0.1:{grafana_files.GRAFANA_PORT}"
    return [Component(
        "grafana", [program, "--homepath", home, "--config", str(ini)],
        lambda: http_ok(f"{url}/api/health"), f"{url}  (dashboards in folder shopfloor)",
        timeout_s=60.0,
    )]


def with_origin(sim: Component, origin_s: float) -> Component:
    """The simulator, its machines running since `origin_s` (the backfilled history)."""
    return replace(sim, cmdline=[*sim.cmdline, "--origin", f"{origin_s:.0f}"])


def plan(plant: Plant, plant_path: Path, run: RunDir, speed: float,
         seed: int = 0) -> list[Component]:
    """Every component of a local run, in start order. The collector and the alarm
    engine start before the edge agents: the collector's persistent session must exist
    before the first telemetry (the backfilled history among it) is published, and the
    alarm engine sees the history's states as they come."""
    parts = [
        broker(plant, run),
        database(plant, run),
        simulator(plant, plant_path, speed, seed),
        *collector(plant, plant_path),
        *alarms(plant, plant_path),
        *edges(plant, plant_path),
        *api(plant, plant_path, run),
        *grafana(plant, run),
    ]
    return [replace(c, env={**c.env, LOG_FILE_ENV: str(run.logs / f"{c.name}.log")})
            if c.ours else c for c in parts]
