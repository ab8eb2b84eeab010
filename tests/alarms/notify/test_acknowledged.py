"""Escalation stops when a person acknowledges, through the real API over HTTP: two
machines stopped through the real edge agent, the real `shopfloor alarms` process with
webhooks, mosquitto and InfluxDB. The operator acknowledges press1 in time; weld1 stays
unacknowledged and escalates to the second target, press1 never does; the ack itself is
notified (who, comment) to the first target."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alarms.notify.receiver import SECRETS, Receiver, health
from tests.alarms.test_people import RESTORED, RULES, Site, _stop
from tests.alarms.test_service import Watcher, chain_processes
from tests.api.harness import ApiServer, create_database, load, make_keys, plant_data
from tests.collector.helpers import wait_for
from tests.harness.plants import write_plant
from tests.harness.processes import ports_open
from tests.harness.services import InfluxDB, Mosquitto, free_port

ESCALATE_AFTER_S = 30


@pytest.fixture
def site(tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
         ) -> Iterator[tuple[Site, Receiver, Receiver, int]]:
    ops, lead = Receiver(SECRETS["OPS_HOOK_SECRET"]), Receiver(SECRETS["LEAD_HOOK_SECRET"])
    keys = make_keys()
    data = plant_data(tmp_path, mosquitto.port, influxdb.url, keys, timeout_s=15.0)
    data["alarms"] = RULES
    metrics_port = free_port()
    data["notifications"] = {
        "webhooks": [{"id": "ops", "url": ops.url, "secret_env": "OPS_HOOK_SECRET"},
                     {"id": "lead", "url": lead.url, "secret_env": "LEAD_HOOK_SECRET",
                      "severities": ["critical"]}],
        "escalations": [{"after_s": ESCALATE_AFTER_S, "to": "lead"}],
        "state_dir": str(tmp_path / "alarms-state"), "metrics_port": metrics_port,
    }
    path = write_plant(data, tmp_path / "plant.yaml")
    plant = load(data)
    create_database(influxdb.url, plant.database.database)
    procs = chain_processes(path, plant, tmp_path,
                            {"env": SECRETS, "healthy": ports_open([metrics_port])})
    with contextlib.ExitStack() as running:
        for receiver in (ops, lead):
            running.callback(receiver.close)
        for proc in procs:
            running.callback(proc.stop)
            proc.start()
        wait_for(lambda: RESTORED in procs[2].log_path.read_text(), 60)
        watcher = running.enter_context(contextlib.closing(
            Watcher(mosquitto.port, plant.site.id)))
        api = ApiServer(plant, data["api"]["port"])
        running.callback(api.stop)
        api.start()
        yield Site(plant, keys, api, procs[2], watcher, influxdb), ops, lead, metrics_port


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_an_acknowledged_alarm_does_not_escalate_an_unacknowledged_one_does(
        site: Any) -> None:
    where, ops, lead, metrics_port = site
    _stop(where, "press1")  # press1 first: its escalation would be due before weld1's
    _stop(where, "weld1")
    with where.client("operator") as operator:
        acked = operator.post("/api/v1/alarms/press1/machine_stopped/ack",
                              json={"comment": "feeder jam"})
    assert acked.status_code == 200, acked.text
    raised_at = _at(where.watcher.history[where.topic("press1")][0][1])
    acked_at = _at(acked.json()["alarm"]["last"]["at"])
    assert acked_at < raised_at + ESCALATE_AFTER_S  # in time, or the test proves nothing
    escalated = wait_for(lambda: lead.accepted_keys("alarm.escalation"), 90)
    assert [lead.accepted[k]["alarm"]["machine"] for k in escalated] == ["weld1"]
    lead_queue = health(metrics_port)["webhooks"]["lead"]
    assert (lead_queue["pending"], lead_queue["delivered"]) == (0, 1)  # press1's: none
    ack = wait_for(lambda: [b for b in ops.accepted.values()
                            if b["alarm"]["last"]["kind"] == "ack"], 30)
    assert ack[0]["alarm"]["machine"] == "press1"
    assert (ack[0]["alarm"]["last"]["by"], ack[0]["alarm"]["last"]["comment"]) == (
        "operator", "feeder jam")
    assert ack[0]["alarm"]["state"] == "active_ack"
