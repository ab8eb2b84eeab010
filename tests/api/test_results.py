"""Command results count only on the command's own machine topic and for a command that
exists, over a real mosquitto with the real API: a result forged on another machine's
topic never marks a command done, and a flood of forged results (made-up ids with the
API's own prefix, wrong topics, junk) is dropped and counted while the API keeps serving
control actions and its database client keeps working."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.shared import topics
from shopfloor.shared.contract import CommandResult, CommandStatus, utc_now
from tests.api.conftest import ApiEnv
from tests.api.harness import wait_for
from tests.api.test_session import dropped
from tests.harness.services import LOOPBACK


def forged(command_id: str, value: object = 99) -> bytes:
    return CommandResult(id=command_id, status=CommandStatus.DONE, detail="forged",
                         readback=value, ts=utc_now()).to_json()  # type: ignore[arg-type]


def result_topic(env: ApiEnv, machine: str) -> str:
    return topics.machine_topic(env.site, env.plant.machines[machine].line, machine,
                                topics.CMD_RESULT)


def forger(env: ApiEnv) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"forger-{uuid.uuid4().hex[:8]}")
    client.connect(LOOPBACK, env.plant.broker.port)
    client.loop_start()
    return client


def test_result_on_another_machines_topic_does_not_count(api_env: ApiEnv,
                                                         admin: httpx.Client) -> None:
    api_env.edge.mode["paint1"] = "silent"
    bad = forger(api_env)
    try:
        with ThreadPoolExecutor(1) as pool:
            asked = pool.submit(admin.post, "/api/v1/machines/paint1/setpoint",
                                json={"point": "speed_pct", "value": 61})
            machine, command = wait_for(lambda: next(
                ((m, c) for m, c in api_env.edge.silent if c.value == 61), None),
                what="the command at the edge")
            for other in ("press1", "weld1", "solo1"):  # every topic but paint1's
                bad.publish(result_topic(api_env, other), forged(command.id, 61),
                            qos=1).wait_for_publish(5)
            answer = asked.result(30)
    finally:
        api_env.edge.mode.pop("paint1")
        bad.loop_stop()
        bad.disconnect()
    assert answer.status_code == 504 and answer.json()["status"] == "timeout", answer.text
    assert dropped(admin, "wrong_topic") >= 3
    api_env.edge.answer(machine, command)  # the real edge, on paint1's topic, late
    late = wait_for(lambda: (c := admin.get(f"/api/v1/commands/{command.id}").json())["late"]
                    and c, what="the late result from the right topic")
    assert late["status"] == "expired"


def test_a_flood_of_forged_results_is_dropped_while_the_api_serves(
        api_env: ApiEnv, admin: httpx.Client) -> None:
    first = admin.post("/api/v1/machines/press1/setpoint",
                       json={"point": "speed_pct", "value": 55})
    assert first.status_code == 200
    prefix = first.json()["commands"][0]["id"][:8]  # the API's own id prefix
    stop = threading.Event()
    sent = [0]

    def flood() -> None:
        bad = forger(api_env)
        machines = list(api_env.plant.machines)
        try:
            while not stop.is_set():
                for i in range(500):
                    topic = result_topic(api_env, machines[i % len(machines)])
                    payload = forged(prefix + uuid.uuid4().hex[8:]) if i % 5 else b"{junk"
                    bad.publish(topic, payload, qos=0)
                sent[0] += 500
        finally:
            bad.loop_stop()
            bad.disconnect()

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        wait_for(lambda: sent[0] >= 5000, 60, "the flood under way")
        for _ in range(20):  # the API keeps serving during the flood
            assert admin.get("/healthz").status_code == 200
            assert admin.get("/api/v1/state").status_code == 200
        during = admin.post("/api/v1/machines/weld1/setpoint",
                            json={"point": "speed_pct", "value": 66})
        assert during.status_code in (200, 504), during.text  # a definite answer
        if during.status_code == 200:  # never a result that is not the edge's own
            assert during.json()["commands"][0]["readback"] == 66
        wait_for(lambda: sent[0] >= 30_000, 120, "30,000 forged results sent")
    finally:
        stop.set()
        flooder.join(30)
    assert dropped(admin, "malformed") > 0
    assert dropped(admin, "not_pending") + dropped(admin, "lookup_busy") \
        + dropped(admin, "overflow") > 0

    def setpoint_done() -> httpx.Response | None:  # once the broker's backlog is drained
        r = admin.post("/api/v1/machines/weld1/setpoint",
                       json={"point": "speed_pct", "value": 77})
        return r if r.status_code == 200 else None

    done = wait_for(setpoint_done, 120, "control actions done again after the flood")
    assert done.json()["commands"][0]["readback"] == 77
    command_id = done.json()["commands"][0]["id"]  # the database client still works
    entries = wait_for(lambda: admin.get("/api/v1/audit", params={
        "command_id": command_id}).json()["items"], 30, "the last setpoint in the audit")
    assert {e["outcome"] for e in entries} >= {"sent"}
    assert admin.get(f"/api/v1/commands/{prefix}{uuid.uuid4().hex[8:]}").status_code == 404
