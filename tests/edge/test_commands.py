"""Commands over a real broker to a real Modbus server: every refusal, a write with
read-back, at-most-once ids, malformed payloads."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from shopfloor.shared import topics
from tests.edge.conftest import machine_spec, plant_data


def command(cid: str, point: str, value: Any, expires_in_s: float = 30,
            action: str = "setpoint", role: str | None = "admin") -> str:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in_s)
    body = {
        "id": cid,
        "point": point,
        "value": value,
        "expires_at": expires.isoformat(),
        "requested_by": "test",
        "control_action": action,
    }
    return json.dumps(body if role is None else {**body, "role": role})


@pytest.fixture
def setup(
    mosquitto: Any,
    unique_site: str,
    modbus_server: Any,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> Any:
    data = plant_data(
        unique_site, mosquitto.port, {"m1": machine_spec(modbus_server.port)}, tmp_path / "state"
    )
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)
    rec.wait_for(lambda: rec.payloads("/edge1/status"))
    cmd_topic = topics.machine_topic(unique_site, "line1", "m1", topics.CMD)

    def send(payload: str | bytes) -> None:
        rec.publish(cmd_topic, payload)

    def result(cid: str, count: int = 1) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]]:
            return [r for r in rec.payloads("/m1/cmd/result") if r["id"] == cid]

        return rec.wait_for(lambda: len(found()) >= count and found())

    return send, result, rec, unique_site


def test_write_reads_back_and_executes_once(setup: Any, modbus_server: Any) -> None:
    send, result, _, _ = setup
    send(command("w1", "speed_pct", 88))
    done = result("w1")
    assert done[0]["status"] == "done" and done[0]["readback"] == 88
    assert modbus_server.get(1, "holding", 4, 1) == [88]

    modbus_server.set(1, "holding", 4, [50])
    send(command("w1", "speed_pct", 99))  # same id again: refused, not written
    again = result("w1", 2)[1]
    assert again["status"] == "rejected" and "duplicate" in again["detail"]
    assert modbus_server.get(1, "holding", 4, 1) == [50]


def test_coil_and_string_writes(setup: Any, modbus_server: Any) -> None:
    send, result, _, _ = setup
    send(command("c1", "run", True, action="start"))
    send(command("s1", "work_order", "WO-7", action="changeover"))
    assert result("c1")[0]["readback"] is True
    assert modbus_server.get(1, "coil", 0, 1)[0] is True
    assert result("s1")[0]["readback"] == "WO-7"


@pytest.mark.parametrize(
    ("point", "value", "expires_in_s", "status", "words"),
    [
        ("nope", 1, 30, "rejected", "unknown point"),
        ("temperature", 1.0, 30, "rejected", "not writable"),
        ("speed_pct", 500, 30, "rejected", "above max"),
        ("speed_pct", "fast", 30, "rejected", "takes a uint16"),
        ("speed_pct", 50, -5, "expired", "expired"),
    ],
)
def test_refusals_do_not_write(
    setup: Any,
    modbus_server: Any,
    point: str,
    value: Any,
    expires_in_s: float,
    status: str,
    words: str,
) -> None:
    send, result, _, _ = setup
    modbus_server.set(1, "holding", 4, [42])
    send(command("r1", point, value, expires_in_s))
    answer = result("r1")[0]
    assert answer["status"] == status and words in answer["detail"]
    assert modbus_server.get(1, "holding", 4, 1) == [42]


def test_malformed_commands(setup: Any) -> None:
    send, result, rec, site = setup
    send(b'{"id": "bad1", "point": "speed_pct"}')  # no value, no expiry
    answer = result("bad1")[0]
    assert answer["status"] == "rejected" and answer["detail"].startswith("malformed")
    send(b"\xff not json at all")
    letters = rec.wait_for(lambda: rec.payloads(topics.dead_letter_topic(site, "edge")))
    assert letters[0]["topic"].endswith("/m1/cmd") and letters[0]["reason"]
