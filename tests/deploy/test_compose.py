"""deploy/: the compose file cannot run here (no Docker engine), so its structure is
checked instead: it parses, every file it mounts exists once init-secrets.sh has run,
every variable it needs is in the generated .env, its commands are shopfloor commands
the plant file supports, and the mosquitto config with the generated ACL and password
file really works on a real mosquitto."""

from __future__ import annotations

import configparser
import getpass
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import yaml

from shopfloor.cli import COMMANDS, main
from shopfloor.deploy.mosquitto import acl_file
from shopfloor.shared import topics
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import ApiKey
from tests.deploy.conftest import User
from tests.harness.services import LOOPBACK, Service, require_binary

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/ (and dashboards/) with init-secrets.sh run in it."""
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(DEPLOY, root / "deploy", ignore=shutil.ignore_patterns(".env", "secrets"))
    shutil.copytree(ROOT / "dashboards", root / "dashboards")
    out = subprocess.run([str(root / "deploy" / "init-secrets.sh")], capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin:/usr/sbin", "DEPLOY_DIR":
                                         str(root / "deploy")}, check=True)
    assert "admin API key" in out.stdout
    return root / "deploy"


def env_of(deployed: Path) -> dict[str, str]:
    lines = (deployed / ".env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line)
    return {key: value.strip("'") for key, value in pairs}


def bind_mounts() -> Iterator[tuple[str, str, str]]:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                yield name, source, target


def test_every_mounted_file_exists_after_init_secrets(deployed: Path) -> None:
    mounts = list(bind_mounts())
    assert len(mounts) >= 8
    missing = [(n, s) for n, s, _ in mounts if not (deployed / s).exists()]
    assert missing == []


def test_every_required_variable_is_generated(deployed: Path) -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert {"INFLUXDB_TOKEN", "MQTT_EDGE1_PASSWORD", "SHOPFLOOR_API_KEYS"} <= required
    assert required <= set(env_of(deployed))
    env = env_of(deployed)
    assert len(env["INFLUXDB_TOKEN"]) == 48 and env["INFLUXDB_TOKEN"].isalnum()
    passwords = [v for k, v in env.items() if k.startswith("MQTT_")]
    assert len(set(passwords)) == len(passwords) and all(len(p) == 32 for p in passwords)


def test_generated_api_key_entry_is_accepted_by_the_api(deployed: Path) -> None:
    keys = json.loads(env_of(deployed)["SHOPFLOOR_API_KEYS"])
    assert [ApiKey.model_validate(k).role for k in keys] == ["admin"]


def test_init_secrets_refuses_to_overwrite(deployed: Path) -> None:
    again = subprocess.run([str(deployed / "init-secrets.sh")], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin", "DEPLOY_DIR": str(deployed)})
    assert again.returncode == 1 and "exists" in again.stderr


def test_services_run_shopfloor_commands_the_plant_supports() -> None:
    plant = load_plant(DEPLOY / "compose" / "plant.yaml")
    assert urlparse(plant.database.url).hostname == "influxdb" in SERVICES
    assert plant.broker.host == "mosquitto" in SERVICES
    assert {m.connection.host for m in plant.machines.values()} == {"sim"}
    ctx = click.Context(main)
    for name in ("collector", "api", "alarms", "sim", "edge"):
        command = SERVICES[name]["command"]
        assert command[0] in COMMANDS and command[1] == "/etc/shopfloor/plant.yaml"
        params = {o for p in main.get_command(ctx, command[0]).params for o in p.opts}
        assert {a for a in command[2:] if a.startswith("--")} <= params
    agent = SERVICES["edge"]["command"][-1]
    assert plant.agent(agent) is not None
    assert SERVICES["edge"]["environment"]["SHOPFLOOR_BROKER_USERNAME"] == agent


def test_image_and_grafana_wiring() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.M):
        assert all((ROOT / s).exists() for s in source.split())
    assert 'ENTRYPOINT ["shopfloor"]' in dockerfile
    provider = yaml.safe_load(
        (ROOT / "dashboards/provisioning/dashboards/shopfloor.yaml").read_text())
    targets = {t for n, _, t in bind_mounts() if n == "grafana"}
    assert provider["providers"][0]["options"]["path"] in targets
    assert "/etc/grafana/provisioning/datasources" in targets


def test_committed_acl_matches_the_compose_plant() -> None:
    plant = load_plant(DEPLOY / "compose" / "plant.yaml")
    assert (DEPLOY / "mosquitto" / "acl").read_text() == acl_file(plant)


def read_unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    assert unit.read(DEPLOY / "systemd" / name)
    return unit


def test_systemd_edge_unit_runs_the_edge_agent() -> None:
    unit = read_unit("shopfloor-edge@.service")
    exec_start = unit["Service"]["ExecStart"].split()
    assert exec_start[1:3] == ["edge", "/etc/shopfloor/plant.yaml"]
    assert exec_start[3:] == ["--agent", "%i"]
    assert unit["Service"]["KillSignal"] == "SIGTERM" and unit["Install"]["WantedBy"]


@pytest.mark.parametrize("component", ["collector", "api", "alarms"])
def test_systemd_units_of_the_central_components(component: str) -> None:
    service = read_unit(f"shopfloor-{component}.service")["Service"]
    assert service["ExecStart"].split()[1:] == [component, "/etc/shopfloor/plant.yaml"]
    assert service["ExecStart"].split()[0] == read_unit("shopfloor-edge@.service")[
        "Service"]["ExecStart"].split()[0]
    assert component in COMMANDS and service["EnvironmentFile"].endswith(f"{component}.env")


@pytest.mark.parametrize("unit", ["shopfloor-edge@.service", "shopfloor-collector.service",
                                  "shopfloor-api.service"])
def test_systemd_units_raise_the_file_descriptor_limit(unit: str) -> None:
    """systemd's default soft limit (1024) is below what the API's connection limit and a
    flood of half-open connections need (shopfloor/api/server.py)."""
    assert int(read_unit(unit)["Service"]["LimitNOFILE"]) >= 65536


class DeployMosquitto(Service):
    """deploy/mosquitto/mosquitto.conf with its /mosquitto paths moved to a temp dir."""

    name = "mosquitto"

    def __init__(self, workdir: Path, deployed: Path) -> None:
        super().__init__(workdir)
        self.deployed = deployed

    def command(self) -> list[str]:
        conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
        conf = conf.replace("listener 1883 0.0.0.0", f"listener {self.port} {LOOPBACK}")
        conf = conf.replace("/mosquitto/config/passwd",
                            str(self.deployed / "secrets/mosquitto.passwd"))
        conf = conf.replace("/mosquitto/config/acl", str(DEPLOY / "mosquitto/acl"))
        conf = conf.replace("/mosquitto/data/", f"{self.workdir}/")
        (self.workdir / "m.conf").write_text(conf + f"user {getpass.getuser()}\n")
        return [require_binary("mosquitto"), "-c", str(self.workdir / "m.conf")]


def test_deploy_mosquitto_config_works_with_generated_secrets(
    deployed: Path, tmp_path: Path
) -> None:
    broker = DeployMosquitto(tmp_path / "m", deployed)
    broker.start()
    env = env_of(deployed)
    clients = []
    try:
        edge = User(broker.port, "edge1", env["MQTT_EDGE1_PASSWORD"])
        collector = User(broker.port, "collector", env["MQTT_COLLECTOR_PASSWORD"])
        anonymous = User(broker.port, None)
        clients += [edge, collector, anonymous]
        for client in clients:
            assert client.connected.wait(5)
        assert anonymous.reason.is_failure
        assert not edge.reason.is_failure and not collector.reason.is_failure
        collector.subscribe(topics.all_of_kind("demo", topics.TELEMETRY))
        topic = topics.machine_topic("demo", "line1", "press1", topics.TELEMETRY)
        assert edge.publish(topic) < 0x80
        assert collector.inbox.get(timeout=5)[0] == topic
    finally:
        for client in clients:
            client.close()
        broker.stop()
