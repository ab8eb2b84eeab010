"""`shopfloor alarms` through the real chain: the simulator's press forced to stop over
Modbus, the real edge agent, mosquitto and InfluxDB. The alarm raises and clears on the
retained alarm topic and in InfluxDB, once each, across a restart of the alarm component
mid-alarm; a stopped edge agent raises agent_offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.client import ModbusTcpClient

from shopfloor.shared import topics
from shopfloor.shared.contract import StatePayload
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import Plant
from tests.collector.helpers import wait_for
from tests.harness.plants import example_data, relocate, write_plant
from tests.harness.processes import ComponentProcess, health_url, sim_healthy
from tests.harness.services import InfluxDB, Mosquitto, free_port

RULES = {
    "defaults": {"machine_stopped": {"enabled": False},
                 "agent_offline": {"after_s": 2, "clear_after_s": 0}},
    "machines": {"press1": {"machine_stopped": {"enabled": True, "after_s": 3,
                                                "clear_after_s": 1, "states": ["stopped"]}}},
}


class Watcher:
    """The latest retained payload of every alarm topic of the site."""

    def __init__(self, port: int, site: str) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[tuple[str, str]]] = {}  # (kind, at) as published
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topics.all_alarms(site), qos=1)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            payload = json.loads(message.payload)
            self.latest[message.topic] = payload
            last = payload["last"]
            self.history.setdefault(message.topic, []).append((last["kind"], last["at"]))

    def state(self, topic: str) -> str | None:
        return self.latest.get(topic, {}).get("state")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def chain_processes(path: Path, plant: Plant, workdir: Path,
                    alarms: dict[str, Any] | None = None) -> list[ComponentProcess]:
    """Simulator, edge agent and `shopfloor alarms` (`alarms`: its ComponentProcess
    keyword arguments), in start order."""
    agent = plant.agents[0]
    return [
        ComponentProcess("sim", ["sim", str(path)], workdir, healthy=sim_healthy(plant)),
        ComponentProcess("edge", ["edge", str(path), "--agent", agent.id], workdir,
                         healthy=health_url(agent.metrics_port)),
        ComponentProcess("alarms", ["alarms", str(path)], workdir, **(alarms or {})),
    ]


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
          ) -> Iterator[tuple[Plant, list[ComponentProcess], Watcher]]:
    data = relocate(example_data(), tmp_path, mosquitto.port, influxdb.url)
    data["alarms"] = {**RULES, "metrics_port": free_port()}
    path = write_plant(data, tmp_path / "plant.yaml")
    plant = load_plant(path)
    # started = healthy: connected, restored from the broker, ticking, database taking it
    procs = chain_processes(path, plant, tmp_path,
                            {"healthy": health_url(plant.alarms.metrics_port)})
    watcher = Watcher(mosquitto.port, plant.site.id)
    try:
        for proc in procs:
            proc.start()
        yield plant, procs, watcher
    finally:
        watcher.close()
        for proc in reversed(procs):
            proc.stop()


def _run(plant: Plant, on: bool) -> None:
    conn = plant.machines["press1"].connection
    client = ModbusTcpClient("127.0.0.1", port=conn.port, timeout=2)
    assert client.connect()
    try:
        assert not client.write_coil(0, on, device_id=conn.device_id).isError()
    finally:
        client.close()


def _transitions(influxdb: InfluxDB, plant: Plant, machine: str, rule: str) -> list[str]:
    """The stored transition kinds of one alarm instance, in time order."""
    try:
        series = influxdb.query(f"SELECT kind FROM alarm WHERE machine = '{machine}' "
                                f"AND rule = '{rule}'", database=plant.database.database)
    except RuntimeError as exc:  # before the component's first write
        assert "database not found" in str(exc)
        return []
    return [value[1] for s in series for value in s["values"]]


def test_stop_raises_survives_a_restart_and_clears_once(chain: Any, influxdb: InfluxDB
                                                         ) -> None:
    plant, procs, watcher = chain
    alarms = procs[2]
    topic = topics.alarm_topic(plant.site.id, "line1", "press1", "machine_stopped")
    _run(plant, False)
    wait_for(lambda: watcher.state(topic) == "active_unack", 30)
    raised = watcher.latest[topic]
    assert raised["last"]["kind"] == "raise" and raised["severity"] == "medium"
    alarms.stop()
    alarms.start()
    wait_for(lambda: _transitions(influxdb, plant, "press1", "machine_stopped"), 15)
    _run(plant, True)
    wait_for(lambda: watcher.state(topic) == "cleared_unack", 30)
    kinds = wait_for(lambda: (k := _transitions(influxdb, plant, "press1", "machine_stopped"))
                     and len(k) >= 2 and k, 15)
    assert kinds == ["raise", "clear"], alarms.log_tail()
    # published once each: the restarted component did not raise the alarm again
    assert [kind for kind, _ in watcher.history[topic]] == ["raise", "clear"]
    assert watcher.latest[topic]["last"]["at"] > raised["last"]["at"]


def test_a_stopped_edge_agent_raises_agent_offline(chain: Any, influxdb: InfluxDB) -> None:
    plant, procs, watcher = chain
    topic = topics.alarm_topic(plant.site.id, "line1", "weld1", "agent_offline")
    procs[1].stop()
    wait_for(lambda: watcher.state(topic) == "active_unack", 30)
    assert "raise" in wait_for(lambda: _transitions(influxdb, plant, "weld1",
                                                    "agent_offline"), 15)


def test_health_says_what_is_wrong(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A database that does not answer: the stop's transition waits (not lost) and
    /healthz says 503 with why; /metrics counts the instances by state."""
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    data = relocate(example_data(), tmp_path, mosquitto.port, down)
    port = free_port()
    data["alarms"] = {**RULES, "metrics_port": port}
    data["alarms"]["machines"]["press1"]["machine_stopped"]["after_s"] = 0
    path = write_plant(data, tmp_path / "plant.yaml")
    plant = load_plant(path)
    alarms = ComponentProcess("alarms", ["alarms", str(path)], tmp_path,
                              healthy=lambda: _health(port) is not None)
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    alarms.start()
    try:
        assert wait_for(lambda: (h := _health(port)) and h[1]["restored"] and h, 30)
        now = "2026-12-03T08:00:00Z"
        state = StatePayload.model_validate({"ts": now, "since": now, "state": "stopped"})
        publisher.publish(topics.machine_topic(plant.site.id, "line1", "press1", topics.STATE),
                          state.to_json(), qos=1, retain=True).wait_for_publish(10)
        status, body = wait_for(lambda: (h := _health(port)) and h[1]["database_failing"] and h,
                                30)
        assert status == 503, body
        assert body["broker_connected"] and body["restored"]
        assert body["pending_lines"] == 1 and body["dropped_lines"] == 0
        assert body["instances"]["active_unack"] == 1
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'shopfloor_alarms_instances{state="active_unack"} 1.0' in metrics
        assert "shopfloor_alarms_pending_lines 1.0" in metrics
    finally:
        alarms.stop()
        publisher.publish(topics.machine_topic(plant.site.id, "line1", "press1", topics.STATE), b"",
                          retain=True).wait_for_publish(10)
        publisher.loop_stop()
        publisher.disconnect()


def _health(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    except httpx.HTTPError:
        return None
    return reply.status_code, reply.json()
