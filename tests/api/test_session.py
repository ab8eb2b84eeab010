"""The API's persistent MQTT session, on a real mosquitto and InfluxDB with the real API
(as a `shopfloor api` process where it is killed or stopped): a command result the edge
publishes while the API is away is queued by the broker, reaches the API when it comes
back and is recorded late (and audited); two API instances with their own client ids
work side by side and leave each other's results alone."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopfloor.api.commands import id_prefix
from shopfloor.shared import topics
from shopfloor.shared.contract import Command, CommandResult, CommandStatus, utc_now
from tests.api.harness import (
    COMMAND_TIMEOUT_S,
    ApiProcess,
    ApiServer,
    EdgeStandIn,
    create_database,
    load,
    make_keys,
    plant_data,
    wait_for,
)
from tests.harness.services import free_port

LONG_TIMEOUT_S = 120.0  # the API is killed long before it would give up on the command


MakeRig = Callable[[Any, float], ApiProcess]


@pytest.fixture
def make_rig(influxdb: Any, tmp_path: Path) -> Iterator[MakeRig]:
    """`make_rig(broker, command_timeout_s)`: the API as a process (default client id)
    on `broker`, and an edge stand-in."""
    made: list[ApiProcess] = []

    def make(broker: Any, timeout_s: float) -> ApiProcess:
        rig = ApiProcess.create(tmp_path, broker.port, influxdb.url, timeout_s)
        made.append(rig)
        rig.api.start()
        return rig

    yield make
    for rig in made:
        rig.close()


def publish_result(edge: EdgeStandIn, machine: str, command_id: str, value: Any) -> None:
    """The result an edge publishes after writing `value` (QoS 1, acknowledged)."""
    result = CommandResult(id=command_id, status=CommandStatus.DONE, detail="written",
                           readback=value, ts=utc_now())
    topic = topics.machine_topic(edge.site, "line1", machine, topics.CMD_RESULT)
    edge.client.publish(topic, result.to_json(), qos=1).wait_for_publish(10)


def audit_of(admin: httpx.Client, command_id: str) -> list[dict[str, Any]]:
    return list(admin.get("/api/v1/audit", params={"command_id": command_id}).json()["items"])


def audit_outcomes(admin: httpx.Client, command_id: str, count: int) -> list[tuple[str, bool]]:
    """(outcome, late) of the command's audit entries, sorted, once there are `count`."""
    def outcomes() -> list[tuple[str, bool]] | None:
        found = sorted((e["outcome"], e["late"]) for e in audit_of(admin, command_id))
        return found if len(found) >= count else None

    result: list[tuple[str, bool]] = wait_for(outcomes, 30, f"{count} audit entries")
    return result


def late_command(admin: httpx.Client, command_id: str) -> dict[str, Any]:
    """The command once its late result is recorded (polled with a deadline)."""
    def looked_up() -> dict[str, Any] | None:
        r = admin.get(f"/api/v1/commands/{command_id}")
        return r.json() if r.status_code == 200 and r.json()["late"] else None

    found: dict[str, Any] = wait_for(looked_up, 30, "late result")
    return found


def send_and_hold(rig: ApiProcess, machine: str) -> Command:
    """POST stop to a silent machine in a thread (the API dies under it); the command
    once the stand-in holds it and its `sent` entry is in the audit."""
    rig.edge.mode[machine] = "silent"

    def post() -> None:
        # the API is killed under the request
        with rig.client() as admin, contextlib.suppress(httpx.HTTPError):
            admin.post(f"/api/v1/machines/{machine}/stop", timeout=LONG_TIMEOUT_S)

    threading.Thread(target=post, daemon=True).start()
    command: Command = wait_for(
        lambda: next((c for m, c in rig.edge.silent if m == machine), None), 30, "command")
    with rig.client() as admin:
        wait_for(lambda: any(e["outcome"] == "sent" for e in audit_of(admin, command.id)),
                 30, "sent entry in the audit")
    return command


def test_result_published_while_the_api_is_killed_is_recorded_late(
        mosquitto: Any, make_rig: MakeRig) -> None:
    rig = make_rig(mosquitto, LONG_TIMEOUT_S)
    command = send_and_hold(rig, "pack1")
    rig.api.kill()
    publish_result(rig.edge, "pack1", command.id, False)  # queued by the broker for the API
    rig.api.start()  # same port, so the same default client id: the session resumes
    with rig.client() as admin:
        found = late_command(admin, command.id)
        assert found["status"] == "done" and found["readback"] is False
        assert found["action"] == "stop" and found["requested_by"] == "admin"
        assert found["point"] == command.point and found["value"] is False
        entries = wait_for(lambda: [e for e in audit_of(admin, command.id) if e["late"]], 30,
                           "late audit entry")
    [entry] = entries
    assert entry["outcome"] == "done" and entry["machine"] == "pack1"
    assert entry["action"] == "stop" and entry["requested_by"] == "admin"


def test_result_queued_while_the_api_is_stopped_survives_a_broker_restart(
        own_mosquitto: Any, make_rig: MakeRig) -> None:
    rig = make_rig(own_mosquitto, COMMAND_TIMEOUT_S)
    rig.edge.mode["weld1"] = "silent"
    with rig.client() as admin:
        answer = admin.post("/api/v1/machines/weld1/setpoint",
                            json={"point": "speed_pct", "value": 42})
    assert answer.status_code == 504 and answer.json()["status"] == "timeout"
    command_id = answer.json()["commands"][0]["id"]
    rig.api.stop()  # SIGTERM, a graceful shutdown: its DISCONNECT keeps the session
    publish_result(rig.edge, "weld1", command_id, 42)
    own_mosquitto.restart()  # the queued result is in the broker's persistence file
    rig.api.start()
    with rig.client() as admin:
        found = late_command(admin, command_id)
        assert found["status"] == "done" and found["readback"] == 42
        assert found["action"] == "setpoint" and found["value"] == 42
        outcomes = audit_outcomes(admin, command_id, 3)
    assert outcomes == [("done", True), ("sent", False), ("timeout", False)]


@pytest.fixture
def two_apis(mosquitto: Any, influxdb: Any, tmp_path: Path
             ) -> Iterator[tuple[ApiServer, ApiServer, EdgeStandIn, dict[str, str]]]:
    keys = make_keys()
    data = plant_data(tmp_path, mosquitto.port, influxdb.url, keys, COMMAND_TIMEOUT_S)
    plant = load(data)
    create_database(influxdb.url, plant.database.database)
    edge = EdgeStandIn(mosquitto.port, plant.site.id)
    apis: list[ApiServer] = []
    try:
        for name, port in (("a", data["api"]["port"]), ("b", free_port())):
            apis.append(ApiServer(plant, port, mqtt_client_id=f"api-{name}-{plant.site.id}"))
            apis[-1].start()
        yield apis[0], apis[1], edge, keys
    finally:
        for api in apis:
            api.stop()
        edge.close()


def test_two_instances_with_their_own_client_ids_both_work(
        two_apis: tuple[ApiServer, ApiServer, EdgeStandIn, dict[str, str]]) -> None:
    api_a, api_b, edge, keys = two_apis
    headers = {"X-API-Key": keys["admin"]}
    with httpx.Client(base_url=api_a.url, headers=headers, timeout=30) as a, \
            httpx.Client(base_url=api_b.url, headers=headers, timeout=30) as b:
        ids: list[str] = []
        for value in (51, 52, 53):
            for client, prefix in ((a, "a"), (b, "b")):
                r = client.post("/api/v1/machines/press1/setpoint",
                                json={"point": "speed_pct", "value": value})
                assert r.status_code == 200, r.text
                [command] = r.json()["commands"]
                assert command["id"].startswith(id_prefix(f"api-{prefix}-{edge.site}"))
                ids.append(command["id"])
        assert a.get("/healthz").status_code == 200 and b.get("/healthz").status_code == 200
        for command_id in ids:  # each result recorded once, by the instance that sent it
            assert audit_outcomes(a, command_id, 2) == [("done", False), ("sent", False)]


def test_result_for_an_id_never_sent_is_dropped_and_counted(
        two_apis: tuple[ApiServer, ApiServer, EdgeStandIn, dict[str, str]]) -> None:
    """A result for an id no command has (ours by its prefix, or nobody's) never becomes
    a command: no audit entry, 404 on lookup, counted as not_pending."""
    api_a, _, edge, keys = two_apis
    ours = id_prefix(f"api-a-{edge.site}") + uuid.uuid4().hex[8:]
    foreign = "not-a-command-of-any-api"
    publish_result(edge, "press1", foreign, 7)
    publish_result(edge, "press1", ours, 8)
    with httpx.Client(base_url=api_a.url, headers={"X-API-Key": keys["admin"]},
                      timeout=30) as admin:
        wait_for(lambda: dropped(admin, "not_pending") >= 1, 30, "the result dropped")
        assert audit_of(admin, ours) == []
        assert admin.get(f"/api/v1/commands/{ours}").status_code == 404
        assert admin.get(f"/api/v1/commands/{foreign}").status_code == 404
        r = admin.post("/api/v1/machines/press1/setpoint",
                       json={"point": "speed_pct", "value": 44})
        assert r.status_code == 200, "the API keeps working"


def dropped(client: httpx.Client, reason: str) -> float:
    """shopfloor_api_results_dropped_total{reason} from the API's /metrics."""
    prefix = f'shopfloor_api_results_dropped_total{{reason="{reason}"}} '
    lines = [line for line in client.get("/metrics").text.splitlines()
             if line.startswith(prefix)]
    return float(lines[0].split()[-1]) if lines else 0.0
