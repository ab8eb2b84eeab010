"""Webhooks from the real `shopfloor alarms` process: the simulator's press forced to
stop over Modbus, the real edge agent, mosquitto and InfluxDB; the receiver is down when
the alarm raises, the component is killed (-9) with the notification still queued and
started again, then the receiver comes up: raise and clear arrive once each by key,
signed; the unacknowledged alarm escalates once to the second target."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shopfloor.shared import topics
from shopfloor.shared.loader import load_plant
from tests.alarms.notify.receiver import SECRETS, Receiver, health
from tests.alarms.test_service import RULES, Watcher, _run, chain_processes
from tests.collector.helpers import wait_for
from tests.harness.plants import example_data, relocate, write_plant
from tests.harness.processes import ports_open
from tests.harness.services import InfluxDB, Mosquitto, free_port


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> Iterator[Any]:
    ops, lead = Receiver(SECRETS["OPS_HOOK_SECRET"]), Receiver(SECRETS["LEAD_HOOK_SECRET"])
    ops.down()
    data = relocate(example_data(), tmp_path, mosquitto.port, influxdb.url)
    data["alarms"] = RULES
    metrics_port = free_port()
    data["notifications"] = {
        "webhooks": [
            {"id": "ops", "url": ops.url, "secret_env": "OPS_HOOK_SECRET",
             "rules": ["machine_stopped"]},
            {"id": "lead", "url": lead.url, "secret_env": "LEAD_HOOK_SECRET",
             "severities": ["critical"]},
        ],
        "escalations": [{"after_s": 3, "to": "lead", "rules": ["machine_stopped"]}],
        "state_dir": str(tmp_path / "alarms-state"), "retry_max_s": 1,
        "metrics_port": metrics_port,
    }
    path = write_plant(data, tmp_path / "plant.yaml")
    plant = load_plant(path)
    procs = chain_processes(path, plant, tmp_path,
                            {"env": SECRETS, "healthy": ports_open([metrics_port])})
    watcher = Watcher(mosquitto.port, plant.site.id)
    try:
        for proc in procs:
            proc.start()
        yield plant, procs, watcher, ops, lead, metrics_port
    finally:
        watcher.close()
        for proc in reversed(procs):
            proc.stop()
        ops.close()
        lead.close()


def test_a_killed_component_delivers_its_queue_once_after_the_receiver_returns(
        chain: Any) -> None:
    plant, procs, watcher, ops, lead, metrics_port = chain
    alarms = procs[2]
    topic = topics.alarm_topic(plant.site.id, "line1", "press1", "machine_stopped")
    _run(plant, False)
    wait_for(lambda: watcher.state(topic) == "active_unack", 30)
    wait_for(lambda: health(metrics_port)["webhooks"]["ops"]["failing"], 30)
    escalated = wait_for(lambda: lead.accepted_keys("alarm.escalation"), 30)
    alarms.stop(signal.SIGKILL)
    ops.up()
    alarms.start()
    raised = wait_for(lambda: ops.accepted_keys(), 30)
    assert [ops.accepted[k]["alarm"]["last"]["kind"] for k in raised] == ["raise"]
    _run(plant, True)
    wait_for(lambda: watcher.state(topic) == "cleared_unack", 30)
    keys = wait_for(lambda: (k := ops.accepted_keys()) and len(k) == 2 and k, 30)
    assert [ops.accepted[k]["alarm"]["last"]["kind"] for k in keys] == ["raise", "clear"]
    assert ops.duplicates == 0 and all(r.signed for r in ops.requests), alarms.log_tail()
    assert {r.key for r in ops.requests if r.status == 200} == set(keys)
    assert lead.accepted_keys("alarm.escalation") == escalated and len(escalated) == 1
    assert lead.accepted[escalated[0]]["alarm"]["machine"] == "press1"
    status = health(metrics_port)
    assert status["ok"] and status["webhooks"]["ops"]["pending"] == 0
