"""Every component against the generated broker access: the simulator, a real edge agent,
the collector, the API and the alarm engine as processes, each logged in as its own MQTT
user on a real mosquitto configured with `access_conf` (client ids bound to user names),
the generated ACL and a password file. Every topic the access table lets a component publish must
arrive (an observer reads the whole site), the edge's dead letters included, and each
component must get what it subscribes to."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from paho.mqtt.client import topic_matches_sub

from shopfloor.api.security import hash_key
from shopfloor.deploy.mosquitto import Users, acl_file
from shopfloor.shared import access, topics
from shopfloor.shared.access import PUBLISH, Grant
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import Plant
from tests.api.harness import create_database
from tests.deploy.conftest import PASSWORD, SecuredMosquitto, User
from tests.harness.plants import example_data, relocate, write_plant
from tests.harness.processes import ComponentProcess, health_url, sim_healthy
from tests.harness.services import LOOPBACK

AGENTS = [{"id": "edge1", "machines": ["press1", "weld1"]},  # a real edge process
          {"id": "edge2", "machines": ["paint1", "pack1"]}]  # the test, as a faulty edge
USERS = Users(apis=("api", "api2"))  # api2: the test, as a second API replica


def _plant(workdir: Path, broker: SecuredMosquitto, influx_url: str, key: str) -> Path:
    data = example_data()
    data["agents"] = AGENTS
    data = relocate(data, workdir, broker.port, influx_url)
    data["collector"]["kpi_period_s"] = 1.0
    data["api"].update(dev_mode=False, command_timeout_s=5.0, state_dir=str(workdir / "api"),
                       keys=[{"name": "admin", "role": "admin", "hash": hash_key(key)}])
    for machine in data["machines"].values():
        machine["poll_interval_s"] = 0.5
    data["alarms"] = {"defaults": {"machine_stopped": {"after_s": 0}}}  # raise on the stop
    return write_plant(data, workdir / "plant.yaml")


def _login(user: str) -> dict[str, str]:
    return {"SHOPFLOOR_BROKER_USERNAME": user,
            "SHOPFLOOR_BROKER_PASSWORD": PASSWORD.format(user=user)}


class Site:
    """The broker, the processes and an observer that records every topic it sees."""

    def __init__(self, workdir: Path, influx_url: str) -> None:
        self.key = f"admin-{uuid.uuid4().hex}"
        self.broker = SecuredMosquitto(workdir / "broker", None, [])  # port known, not started
        path = _plant(workdir, self.broker, influx_url, self.key)
        self.plant: Plant = load_plant(path)
        create_database(influx_url, self.plant.database.database)
        self.broker.acl = acl_file(self.plant, USERS)
        self.broker.users = [*USERS.collectors, *USERS.apis, *USERS.observers,
                             *USERS.alarms, *(a.id for a in self.plant.agents)]
        self.broker.start()
        self.seen: set[str] = set()
        self.observer = User(self.broker.port, "observer")
        assert self.observer.connected.wait(5) and not self.observer.reason.is_failure
        self.observer.subscribe(f"{topics.ROOT}/{self.plant.site.id}/#")
        self.processes = [
            ComponentProcess("sim", ["sim", str(path)], workdir, healthy=sim_healthy(self.plant)),
            ComponentProcess("collector", ["collector", str(path)], workdir,
                             health_url(self.plant.collector.metrics_port), _login("collector")),
            ComponentProcess("edge", ["edge", str(path), "--agent", "edge1"], workdir,
                             health_url(self.plant.agents[0].metrics_port), _login("edge1")),
            ComponentProcess("api", ["api", str(path)], workdir,
                             health_url(self.plant.api.port), _login("api")),
            ComponentProcess("alarms", ["alarms", str(path)], workdir, env=_login("alarms")),
        ]

    def start(self) -> Site:
        for process in self.processes:
            process.start()
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.observer.close()
        self.broker.stop()

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://{LOOPBACK}:{self.plant.api.port}",
                            headers={"X-API-Key": self.key}, timeout=30)

    def missing(self, grants: list[Grant]) -> list[str]:
        """Published grants no topic seen so far matches (after reading the inbox)."""
        while True:
            try:
                self.seen.add(self.observer.inbox.get_nowait()[0])
            except queue.Empty:
                break
        return [g.topic for g in grants
                if g.access == PUBLISH and not any(topic_matches_sub(g.topic, t)
                                                   for t in self.seen)]


@pytest.fixture
def site(tmp_path: Path, influxdb: Any) -> Iterator[Site]:
    running = Site(tmp_path, influxdb.url)
    try:
        yield running.start()
    finally:
        running.stop()


def _wait_all_seen(site: Site, grants: list[Grant], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while site.missing(grants) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not site.missing(grants), f"never arrived: {site.missing(grants)}"


def _wait_answer(post: Callable[[], httpx.Response], timeout_s: float = 60) -> httpx.Response:
    """The first answer that is neither 409 (nothing to acknowledge until the alarm
    raised) nor 504 (the alarm component not subscribed yet: it has no health check)."""
    deadline = time.monotonic() + timeout_s
    while (answer := post()).status_code in (409, 504) and time.monotonic() < deadline:
        time.sleep(0.5)
    return answer


def test_every_component_publishes_and_receives_under_the_generated_acl(
        site: Site, influxdb: Any) -> None:
    plant = site.plant
    with site.api() as api:
        for machine in ("press1", "weld1"):  # cmd from the API, cmd/result from the edge
            answer = api.post(f"/api/v1/machines/{machine}/stop")
            assert answer.status_code == 200 and answer.json()["status"] == "done", answer.text
        # alarms/cmd from the API, its result from the alarm component (raised on the stop)
        ack = "/api/v1/alarms/press1/machine_stopped/ack"
        answer = _wait_answer(lambda: api.post(ack, json={"comment": "seen"}))
        assert answer.json()["status"] == "done", answer.text
    # The edge dead-letters a command it cannot read (sent by a second API user), the
    # collector telemetry it cannot read (sent by edge2 for its own machine).
    replica, faulty_edge = User(site.broker.port, "api2"), User(site.broker.port, "edge2")
    try:
        assert replica.connected.wait(5) and faulty_edge.connected.wait(5)
        assert replica.publish(topics.machine_topic(plant.site.id, "line1", "press1",
                                                    topics.CMD), b"not a command") < 0x80
        assert faulty_edge.publish(topics.machine_topic(plant.site.id, "line1", "paint1",
                                                        topics.TELEMETRY), b"{") < 0x80
        _wait_all_seen(site, [*access.edge_agent(plant, "edge1"), *access.collector(plant),
                              *access.api(plant), *access.alarms(plant)])
    finally:
        replica.close()
        faulty_edge.close()
    assert topics.dead_letter_topic(plant.site.id, access.EDGE) in site.seen
    # What each component subscribes to reaches it.
    stored = influxdb.query("SELECT count(*) FROM telemetry WHERE machine = 'press1'",
                            database=plant.database.database)
    assert stored and stored[0]["values"][0][1] > 0
    with site.api() as api:
        state = api.get("/api/v1/machines/press1/state").json()
    assert state["online"] is True and state["values"], state
