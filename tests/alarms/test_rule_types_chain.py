"""Every rule type raises and clears through the real chain: the simulator (forced into
the condition over Modbus or its fault endpoint), a real edge agent, the collector with
its live KPIs, the API (downtime events, stocktakes), mosquitto, InfluxDB and
`shopfloor alarms`. Each transition is awaited on the retained alarm topic, with an
event time after the moment the condition was made."""

from __future__ import annotations

import datetime as dt
import json
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.shared import topics
from shopfloor.shared.alarm_rules import SITE_LINE
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import Plant
from tests.alarms.test_service import Watcher, _run
from tests.collector.helpers import wait_for
from tests.harness.plants import example_data, relocate, write_plant
from tests.harness.processes import ComponentProcess, health_url, sim_healthy
from tests.harness.services import InfluxDB, Mosquitto, free_port

OFF = {"enabled": False}
MACHINE_RULES_OFF = {kind: OFF for kind in ("machine_stopped", "agent_offline",
                                             "downtime_unclassified", "coverage_low")}
SITE_RULES_OFF = {"collector_lag": OFF, "dead_letters": OFF}
WAIT_S = 90  # generous: the machine running the tests is shared and loaded
ADMIN = {"X-API-Key": "dev-admin"}  # the example's dev key (api.dev_mode)


class Chain:
    def __init__(self, plant: Plant, procs: dict[str, ComponentProcess], watcher: Watcher,
                 sim_control: int) -> None:
        self.plant, self.procs, self.watcher = plant, procs, watcher
        self.sim_control = sim_control
        self.api = f"http://127.0.0.1:{plant.api.port}/api/v1"

    def topic(self, line: str, machine: str, rule: str) -> str:
        return topics.alarm_topic(self.plant.site.id, line, machine, rule)

    def transition(self, topic: str, kind: str, after: float) -> dict[str, Any]:
        """Wait for a published transition of `kind` whose event time is >= `after`."""
        def found() -> dict[str, Any] | None:
            for seen_kind, at in self.watcher.history.get(topic, []):
                if seen_kind == kind and _epoch(at) >= after:
                    return self.watcher.latest[topic]
            return None
        try:
            return wait_for(found, WAIT_S)
        except AssertionError:
            logs = "\n".join(p.log_tail(15) for p in self.procs.values())
            raise AssertionError(f"no {kind} on {topic} after {after}: "
                                 f"{self.watcher.history.get(topic)}\n{logs}") from None

    def fault(self, machine: str, mode: str) -> None:
        reply = httpx.post(f"http://127.0.0.1:{self.sim_control}/faults/{machine}",
                           params={"mode": mode}, timeout=10)
        assert reply.status_code == 200, reply.text


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _start(tmp_path: Path, data: dict[str, Any], api: bool) -> tuple[Plant, dict[str, Any]]:
    path = write_plant(data, tmp_path / "plant.yaml")
    plant = load_plant(path)
    control = free_port()
    agent = plant.agents[0]
    procs = {
        "sim": ComponentProcess("sim", ["sim", str(path), "--control-port", str(control)],
                                tmp_path, healthy=sim_healthy(plant)),
        "collector": ComponentProcess("collector", ["collector", str(path)], tmp_path,
                                      healthy=health_url(plant.collector.metrics_port)),
        "edge": ComponentProcess("edge", ["edge", str(path), "--agent", agent.id], tmp_path,
                                 healthy=health_url(agent.metrics_port)),
    }
    if api:
        procs["api"] = ComponentProcess("api", ["api", str(path)], tmp_path,
                                        healthy=health_url(plant.api.port),
                                        env={"SHOPFLOOR_API_STATE_DIR": str(tmp_path / "api")})
    procs["alarms"] = ComponentProcess("alarms", ["alarms", str(path)], tmp_path)
    return plant, {"procs": procs, "control": control}


@pytest.fixture
def make_chain(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
               ) -> Iterator[Any]:
    started: list[tuple[Watcher, dict[str, ComponentProcess]]] = []

    def make(configure: Any, api: bool) -> Chain:
        data = relocate(example_data(), tmp_path, mosquitto.port, influxdb.url)
        configure(data)
        plant, parts = _start(tmp_path, data, api)
        procs = parts["procs"]
        watcher = Watcher(mosquitto.port, plant.site.id)
        started.append((watcher, procs))
        for proc in procs.values():
            proc.start()
        return Chain(plant, procs, watcher, parts["control"])

    yield make
    for watcher, procs in started:
        watcher.close()
        for proc in reversed(list(procs.values())):
            proc.stop()


def _kpi_plant(shift_start: dt.datetime) -> Any:
    """A shift starting at `shift_start` (so that its KPIs are young and fully covered),
    KPIs every second over a short rolling window, and the rules under test."""
    def configure(data: dict[str, Any]) -> None:
        local = shift_start.astimezone(zoneinfo.ZoneInfo(data["site"]["timezone"]))
        end = local + dt.timedelta(hours=2)
        data["calendar"] = {"shifts": [{"name": "test", "start": local.strftime("%H:%M:%S"),
                                        "end": end.strftime("%H:%M:%S")}]}
        data["collector"].update(kpi_period_s=1, rolling_window_s=5, minor_stop_s=1)
        data["downtime"]["threshold_s"] = 2
        data["alarms"] = {
            "defaults": {**MACHINE_RULES_OFF, **SITE_RULES_OFF},
            "machines": {
                "press1": {
                    "shift_kpi_low": {"enabled": True, "kpi": "availability",
                                      "below_pct": 60, "after_shift_s": 5, "after_s": 0,
                                      "clear_after_s": 0},
                    "downtime_unclassified": {"enabled": True, "after_s": 3,
                                              "clear_after_s": 0},
                    "buffer_wip": {"enabled": True, "max_parts": 30, "after_s": 0,
                                   "clear_after_s": 0}},
                "weld1": {"coverage_low": {"enabled": True, "below_pct": 90, "after_s": 2,
                                           "clear_after_s": 0}},
            },
        }
    return configure


class KpiWatch:
    """The latest retained KPI payload of press1."""

    def __init__(self, port: int, topic: str) -> None:
        self.latest: dict[str, Any] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_message = lambda _c, _u, m: self.latest.update(json.loads(m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _stocktake(chain: Chain, press1: int) -> None:
    reply = httpx.post(f"{chain.api}/lines/line1/stocktake", headers=ADMIN, timeout=30,
                       json={"count": press1, "buffers": {"press1": press1, "weld1": 0,
                                                          "paint1": 0}})
    assert reply.status_code == 201, reply.text


def test_kpi_downtime_and_buffer_rules_raise_and_clear(make_chain: Any,
                                                       mosquitto: Mosquitto) -> None:
    shift_start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=20)
    chain = make_chain(_kpi_plant(shift_start), api=True)
    kpis = KpiWatch(mosquitto.port, topics.machine_topic(chain.plant.site.id, "line1",
                                                         "press1", topics.KPI))
    try:
        # shift KPI and unclassified downtime: press1 stops early in the shift
        wait_for(lambda: (kpis.latest.get("shift") or {}).get("availability") is not None
                 and _epoch(kpis.latest["ts"]) >= shift_start.timestamp() + 5, WAIT_S)
        stopped_at = time.time()
        _run(chain.plant, False)
        shift_topic = chain.topic("line1", "press1", "shift_kpi_low")
        downtime_topic = chain.topic("line1", "press1", "downtime_unclassified")
        chain.transition(shift_topic, "raise", stopped_at)
        raised = chain.transition(downtime_topic, "raise", stopped_at - 1)
        event = f"press1:{round(_epoch(raised['condition_since']) * 1000)}"
        reply = httpx.post(f"{chain.api}/downtime/events/{event}/classify", headers=ADMIN,
                           json={"reason": "jam", "part": 0}, timeout=30)
        assert reply.status_code == 200, reply.text
        chain.transition(downtime_topic, "clear", stopped_at)
        ran_at = time.time()
        _run(chain.plant, True)
        chain.transition(shift_topic, "clear", ran_at)

        # buffer WIP: a stocktake puts 60 parts in press1's buffer (max 30), then 0
        buffer_topic = chain.topic("line1", "press1", "buffer_wip")
        counted_at = time.time()
        _stocktake(chain, 60)
        chain.transition(buffer_topic, "raise", counted_at - 1)
        emptied_at = time.time()
        _stocktake(chain, 0)
        chain.transition(buffer_topic, "clear", emptied_at - 1)

        # coverage: weld1 stops answering the edge, then answers again
        coverage_topic = chain.topic("line1", "weld1", "coverage_low")
        silent_at = time.time()
        chain.fault("weld1", "silent")
        chain.transition(coverage_topic, "raise", silent_at)
        answered_at = time.time()
        chain.fault("weld1", "normal")
        chain.transition(coverage_topic, "clear", answered_at)
    finally:
        kpis.close()


def _collector_plant(data: dict[str, Any]) -> None:
    data["collector"]["stats_period_s"] = 1
    data["alarms"] = {"defaults": {
        **MACHINE_RULES_OFF,
        "collector_lag": {"max_lag_s": 3, "after_s": 0, "clear_after_s": 0},
        "dead_letters": {"min_increase": 1, "after_s": 0, "clear_after_s": 2}}}


def test_collector_lag_and_dead_letters_raise_and_clear(make_chain: Any,
                                                        mosquitto: Mosquitto) -> None:
    chain = make_chain(_collector_plant, api=False)
    collector = chain.plant.collector.client_id
    site = chain.plant.site.id
    # dead letters: a message that is not telemetry on a telemetry topic
    dead_topic = chain.topic(SITE_LINE, collector, "dead_letters")
    sent_at = time.time()
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        publisher.publish(topics.machine_topic(site, "line1", "press1", topics.TELEMETRY),
                          b"not json", qos=1).wait_for_publish(10)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    chain.transition(dead_topic, "raise", sent_at - 1)
    chain.transition(dead_topic, "clear", sent_at)
    # lag: the collector is away for 8 s; the broker keeps its session's messages,
    # which it writes late when it is back
    lag_topic = chain.topic(SITE_LINE, collector, "collector_lag")
    chain.procs["collector"].stop()
    away_from = time.time()
    wait_for(lambda: time.time() > away_from + 8, 30)
    chain.procs["collector"].start()
    raised = chain.transition(lag_topic, "raise", away_from)
    assert raised["severity"] == "high" and raised["line"] == SITE_LINE
    chain.transition(lag_topic, "clear", away_from)
