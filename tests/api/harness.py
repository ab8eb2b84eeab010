"""Real processes-in-threads for API tests: the API under uvicorn on a free port, the
simulator and the edge agent on their own event loops, and an edge stand-in (a real paho
client answering commands on cmd/result as an edge does) for outcomes a healthy edge
never produces on demand (rejected, failed, silent then late)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import paho.mqtt.client as mqtt
import uvicorn
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.api.config import settings_from_plant
from shopfloor.api.main import create_app
from shopfloor.api.security import hash_key
from shopfloor.shared import topics
from shopfloor.shared.contract import (
    AlarmCommand,
    AlarmCommandResult,
    Command,
    CommandResult,
    CommandStatus,
    parse,
    utc_now,
)
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant, Role
from tests.harness.plants import example_data, relocate
from tests.harness.processes import ComponentProcess, health_url
from tests.harness.services import LOOPBACK, free_port

ROLES = [r.value for r in Role]
RESTRICTED = "line2op"  # an operator key restricted to line2
RESTRICTED_ADMIN = "line2admin"  # an admin key restricted to line2 (passes every role check)
# Long enough that a loaded CI machine never turns a done command into a timeout (a round
# trip is ~5 ms); tests that need a timeout use a silent stand-in and wait this long.
COMMAND_TIMEOUT_S = 2.5


def make_keys() -> dict[str, str]:
    """key name -> secret: one key per role (named like the role) and a restricted one."""
    return {name: f"{name}-{uuid.uuid4().hex}" for name in [*ROLES, RESTRICTED, RESTRICTED_ADMIN]}


def plant_data(workdir: Path, broker_port: int, influx_url: str, keys: dict[str, str],
               timeout_s: float) -> dict[str, Any]:
    """The example plant on the test's services, plus line2 with one machine (solo1) for
    line restrictions, and API keys for every role."""
    data = relocate(example_data(), workdir, broker_port, influx_url)
    solo = copy.deepcopy(data["machines"]["pack1"])
    solo["line"] = "line2"
    solo["connection"]["device_id"] = 5
    data["machines"]["solo1"] = solo
    data["lines"].append({"id": "line2", "stations": ["solo1"]})
    data["agents"][0]["machines"].append("solo1")
    entries = [{"name": n, "role": n, "hash": hash_key(s)} for n, s in keys.items() if n in ROLES]
    entries.append({"name": RESTRICTED, "role": "operator", "hash": hash_key(keys[RESTRICTED]),
                    "lines": ["line2"]})
    entries.append({"name": RESTRICTED_ADMIN, "role": "admin",
                    "hash": hash_key(keys[RESTRICTED_ADMIN]), "lines": ["line2"]})
    data["api"] = {"port": free_port(), "dev_mode": False, "keys": entries,
                   "command_timeout_s": timeout_s, "state_dir": str(workdir / "api-state")}
    return data


def create_database(influx_url: str, name: str) -> None:
    httpx.post(f"{influx_url}/query", params={"q": f'CREATE DATABASE "{name}"'}).raise_for_status()


class ApiServer:
    """The real app under uvicorn in a thread (lifespan and all)."""

    def __init__(self, plant: Plant, port: int, **overrides: Any) -> None:
        settings = settings_from_plant(plant, port=port, **overrides)
        config = uvicorn.Config(create_app(plant, settings), host=LOOPBACK, port=port,
                                log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.url = f"http://{LOOPBACK}:{port}"
        self._thread = threading.Thread(target=self.server.run, daemon=True, name="api")

    def start(self) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("API did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)


class EdgeStandIn:
    """Answers commands for a site like an edge: `mode[machine]` is done (store the value,
    read it back), rejected, failed or silent (remember, answer nothing). Expired
    commands are answered `expired` and not executed, like the edge. Actions on alarms
    (no alarm component runs here) are answered `rejected` (`alarm_actions` keeps them;
    tests/alarms/test_people.py acts on real alarms)."""

    def __init__(self, broker_port: int, site: str, only: set[str] | None = None) -> None:
        self.site = site
        self.only = only  # answer only these machines (None: all)
        self.mode: dict[str, str] = {}
        self.values: dict[tuple[str, str], Any] = {}
        self.received: list[Command] = []
        self.alarm_actions: list[AlarmCommand] = []
        self.silent: list[tuple[str, Command]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"standin-{uuid.uuid4().hex[:8]}")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(topics.all_of_kind(site, topics.CMD), 1), (topics.alarm_cmd_topic(site), 1)])
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.connect(LOOPBACK, broker_port)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == topics.alarm_cmd_topic(self.site):
            self._refuse_alarm_action(msg.payload)
            return
        where = topics.parse_machine_topic(msg.topic)
        assert where is not None
        if self.only is not None and where.machine not in self.only:
            return
        command: Command = parse(Command, msg.payload)
        with self._lock:
            self.received.append(command)
        mode = self.mode.get(where.machine, "done")
        if mode == "silent":
            self.silent.append((where.machine, command))
            return
        self.answer(where.machine, command, mode)

    def answer(self, machine: str, command: Command, mode: str = "done") -> None:
        readback: Any = None
        if command.expires_at <= utc_now():
            status, detail = CommandStatus.EXPIRED, "expired"
        elif mode == "done":
            self.values[(machine, command.point)] = command.value
            status, readback, detail = CommandStatus.DONE, command.value, "written"
        else:
            status, detail = CommandStatus(mode), f"stand-in says {mode}"
        line = "line2" if machine == "solo1" else "line1"
        result = CommandResult(id=command.id, status=status, detail=detail, readback=readback,
                               ts=utc_now())
        self.client.publish(topics.machine_topic(self.site, line, machine, topics.CMD_RESULT),
                            result.to_json(), qos=1)

    def _refuse_alarm_action(self, payload: bytes) -> None:
        action: AlarmCommand = parse(AlarmCommand, payload)
        with self._lock:
            self.alarm_actions.append(action)
        result = AlarmCommandResult(id=action.id, status=CommandStatus.REJECTED,
                                    detail="stand-in: no alarm component here", ts=utc_now())
        self.client.publish(topics.alarm_result_topic(self.site), result.to_json(), qos=1)

    def publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def load(data: dict[str, Any]) -> Plant:
    return parse_plant(data, "<test plant>")


def serve_stand_in(broker_port: int, site: str, machines: str) -> None:
    """Run an edge stand-in for `machines` (comma-separated) until killed (benchmarks)."""
    EdgeStandIn(broker_port, site, set(machines.split(",")))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    import sys

    serve_stand_in(int(sys.argv[1]), sys.argv[2], sys.argv[3])


@dataclass
class ApiProcess:
    """`shopfloor api` as a process of its own on a plant file (so that a test can stop,
    kill -9 and start it again), with an edge stand-in on the same broker. Not started."""

    api: ComponentProcess
    edge: EdgeStandIn
    url: str
    keys: dict[str, str]
    data: dict[str, Any]

    @classmethod
    def create(cls, workdir: Path, broker_port: int, influx_url: str,
               timeout_s: float) -> Self:
        keys = make_keys()
        data = plant_data(workdir, broker_port, influx_url, keys, timeout_s)
        create_database(influx_url, load(data).database.database)
        plant_file = workdir / "plant.yaml"
        plant_file.write_text(yaml.safe_dump(data))
        port = data["api"]["port"]
        return cls(ComponentProcess("api", ["api", str(plant_file)], workdir, health_url(port)),
                   EdgeStandIn(broker_port, data["site"]["id"]), f"http://{LOOPBACK}:{port}",
                   keys, data)

    def client(self, key: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.keys[key]},
                            timeout=30)

    def close(self) -> None:
        self.api.stop()
        self.edge.close()
