"""The edge applies the control rules again before writing (shared.control_rules), over
a real broker to a real Modbus server: a command the API would never send (a point an
action owns sent as a setpoint, a role without the permission, a start while the
device's maintenance coil is on, no role at all) is refused and the device untouched."""

from __future__ import annotations

from typing import Any

import pytest

from shopfloor.shared import topics
from tests.edge.conftest import POINTS, machine_spec, plant_data
from tests.edge.test_commands import command

MAINTENANCE = {"name": "maintenance", "table": "coil", "address": 1, "type": "bool",
               "writable": True}
CONTROL = {"run": "run", "maintenance": "maintenance", "product": "product",
           "work_order": "work_order", "speed": "speed_pct"}


@pytest.fixture
def edge(mosquitto: Any, unique_site: str, modbus_server: Any, tmp_path: Any,
         run_agent: Any, recorder_factory: Any) -> Any:
    spec = machine_spec(modbus_server.port, points=[*POINTS, MAINTENANCE], control=CONTROL)
    data = plant_data(unique_site, mosquitto.port, {"m1": spec}, tmp_path / "state")
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    run_agent(data)
    rec.wait_for(lambda: rec.payloads("/edge1/status"))
    cmd_topic = topics.machine_topic(unique_site, "line1", "m1", topics.CMD)

    def ask(cid: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        rec.publish(cmd_topic, command(cid, *args, **kwargs))
        return rec.wait_for(lambda: next(
            (r for r in rec.payloads("/m1/cmd/result") if r["id"] == cid), None))

    return ask


@pytest.mark.parametrize(("args", "kwargs", "words"), [
    (("run", True), {}, "action_point"),
    (("maintenance", False), {"role": "admin"}, "action_point"),
    (("run", True), {"action": "start", "role": "viewer"}, "forbidden"),
    (("maintenance", False), {"action": "maintenance_off", "role": "operator"}, "forbidden"),
    (("run", True), {"action": "stop"}, "wrong_value"),
    (("speed_pct", 50), {"action": "start"}, "wrong_point"),
])
def test_rule_breaking_commands_are_refused(edge: Any, modbus_server: Any, args: Any,
                                            kwargs: Any, words: str) -> None:
    modbus_server.set(1, "coil", 0, [False, True])
    answer = edge("r1", *args, **kwargs)
    assert answer["status"] == "rejected" and words in answer["detail"]
    assert modbus_server.get(1, "coil", 0, 2) == [False, True]


def test_command_without_role_is_refused(edge: Any, modbus_server: Any) -> None:
    modbus_server.set(1, "holding", 4, [42])
    answer = edge("n1", "speed_pct", 50, role=None)
    assert answer["status"] == "rejected" and "no role" in answer["detail"]
    assert modbus_server.get(1, "holding", 4, 1) == [42]


def test_interlock_reads_the_maintenance_coil(edge: Any, modbus_server: Any) -> None:
    modbus_server.set(1, "coil", 0, [False, True])  # stopped, maintenance mode on
    refused = edge("i1", "run", True, action="start", role="operator")
    assert refused["status"] == "rejected" and "maintenance_interlock" in refused["detail"]
    assert modbus_server.get(1, "coil", 0, 1) == [False]
    allowed = edge("i2", "run", True, action="start", role="maintenance")
    assert allowed["status"] == "done" and modbus_server.get(1, "coil", 0, 1) == [True]
    modbus_server.set(1, "coil", 0, [False, False])  # maintenance off
    assert edge("i3", "run", True, action="start", role="operator")["status"] == "done"
