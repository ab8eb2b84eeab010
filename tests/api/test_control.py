"""Control actions over HTTP against a real broker and InfluxDB, answered by the edge
stand-in: every outcome, every refusal before sending, idempotency, the interlock."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiEnv
from tests.api.harness import ApiServer, free_port, load, plant_data, wait_for


def test_setpoint_done_with_readback(api_env: ApiEnv, admin: httpx.Client) -> None:
    r = admin.post("/api/v1/machines/press1/setpoint", json={"point": "speed_pct", "value": 95})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "done" and body["action"] == "setpoint"
    [command] = body["commands"]
    assert command["readback"] == 95 and command["point"] == "speed_pct"
    assert command["requested_by"] == "admin"
    assert api_env.edge.values[("press1", "speed_pct")] == 95
    sent = next(c for c in api_env.edge.received if c.id == command["id"])
    assert sent.requested_by == "admin" and sent.point == "speed_pct" and sent.value == 95
    assert command["expires_at"] > command["requested_at"]
    looked_up = admin.get(f"/api/v1/commands/{command['id']}").json()
    assert looked_up["status"] == "done" and looked_up["readback"] == 95


def _refused(admin: httpx.Client, path: str, body: dict | None, status: int, code: str,
             env: ApiEnv) -> None:
    before = len(env.edge.received)
    r = admin.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["status"] == "rejected" and r.json()["error"]["code"] == code
    assert len(env.edge.received) == before, "a refused action must send nothing"


def test_refusals_before_sending(api_env: ApiEnv, admin: httpx.Client) -> None:
    sp = "/api/v1/machines/press1/setpoint"
    _refused(admin, sp, {"point": "speed_pct", "value": 121}, 422, "out_of_range", api_env)
    _refused(admin, sp, {"point": "speed_pct", "value": 9.5}, 422, "wrong_type", api_env)
    _refused(admin, sp, {"point": "speed_pct", "value": True}, 422, "wrong_type", api_env)
    _refused(admin, sp, {"point": "temperature", "value": 20}, 422, "not_writable", api_env)
    _refused(admin, sp, {"point": "nope", "value": 1}, 422, "unknown_point", api_env)
    _refused(admin, "/api/v1/machines/press1/changeover", {"product": "A", "work_order": "x" * 25},
             422, "out_of_range", api_env)
    _refused(admin, "/api/v1/machines/press1/changeover", {"product": "Z"}, 422,
             "unknown_product", api_env)
    r = admin.post("/api/v1/machines/nope/setpoint", json={"point": "speed_pct", "value": 50})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_machine"


def test_edge_rejected_and_failed(api_env: ApiEnv, admin: httpx.Client) -> None:
    api_env.edge.mode["weld1"] = "rejected"
    try:
        r = admin.post("/api/v1/machines/weld1/stop")
        assert r.status_code == 409 and r.json()["status"] == "rejected"
        assert "stand-in says rejected" in r.json()["detail"]
        api_env.edge.mode["weld1"] = "failed"
        r = admin.post("/api/v1/machines/weld1/alarm-ack")
        assert r.status_code == 502 and r.json()["status"] == "failed"
    finally:
        api_env.edge.mode.pop("weld1")


def test_timeout_then_late_result_recorded(api_env: ApiEnv, admin: httpx.Client) -> None:
    api_env.edge.mode["paint1"] = "silent"
    try:
        r = admin.post("/api/v1/machines/paint1/setpoint",
                       json={"point": "speed_pct", "value": 70})
    finally:
        api_env.edge.mode.pop("paint1")
    assert r.status_code == 504 and r.json()["status"] == "timeout"
    command_id = r.json()["commands"][0]["id"]
    assert admin.get(f"/api/v1/commands/{command_id}").json()["status"] == "timeout"
    machine, command = next((m, c) for m, c in api_env.edge.silent if c.id == command_id)
    api_env.edge.answer(machine, command)  # too late: the edge refuses it as expired
    late = wait_for(lambda: (admin.get(f"/api/v1/commands/{command_id}").json()
                             if admin.get(f"/api/v1/commands/{command_id}").json()["late"]
                             else None), what="late result")
    assert late["status"] == "expired" and late["late"] is True
    assert ("paint1", "speed_pct") not in api_env.edge.values or \
        api_env.edge.values[("paint1", "speed_pct")] != 70


def test_idempotency_key(api_env: ApiEnv, admin: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = {"point": "speed_pct", "value": 88}
    first = admin.post("/api/v1/machines/pack1/setpoint", json=body,
                       headers={"Idempotency-Key": key})
    count = len(api_env.edge.received)
    again = admin.post("/api/v1/machines/pack1/setpoint", json=body,
                       headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(api_env.edge.received) == count, "a retry must not act twice"
    other = admin.post("/api/v1/machines/pack1/setpoint", json={**body, "value": 89},
                       headers={"Idempotency-Key": key})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(api_env.edge.received) == count


def test_maintenance_interlock(api_env: ApiEnv) -> None:
    with api_env.client("maintenance") as maint, api_env.client("operator") as op:
        assert maint.post("/api/v1/machines/weld1/maintenance", json={"on": True}
                          ).status_code == 200
        refused = op.post("/api/v1/machines/weld1/start")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "maintenance_interlock"
        assert maint.post("/api/v1/machines/weld1/start").status_code == 200
        assert maint.post("/api/v1/machines/weld1/maintenance", json={"on": False}
                          ).status_code == 200
        assert op.post("/api/v1/machines/weld1/start").status_code == 200


def test_changeover_writes_product_code_then_work_order(api_env: ApiEnv,
                                                        admin: httpx.Client) -> None:
    r = admin.post("/api/v1/machines/press1/changeover",
                   json={"product": "B", "work_order": "WO-4711"})
    assert r.status_code == 200, r.text
    assert [(c["point"], c["readback"]) for c in r.json()["commands"]] == [
        ("product", 2), ("work_order", "WO-4711")]
    r = admin.post("/api/v1/machines/press1/changeover", json={"product": 3})
    assert r.status_code == 200 and api_env.edge.values[("press1", "product")] == 3


ACTION_POINTS = [("run", True), ("run", False), ("maintenance", False), ("maintenance", True),
                 ("alarm_ack", True), ("product", 2), ("work_order", "WO-1")]


@pytest.mark.parametrize("role", ["operator", "supervisor", "maintenance", "admin"])
def test_action_points_are_not_free_setpoints(api_env: ApiEnv, role: str) -> None:
    """Every role, every point a dedicated action writes: refused by the setpoint route
    before anything is sent, and the refusal audited with the point and the value."""
    with api_env.client(role) as client:
        for point, value in ACTION_POINTS:
            _refused(client, "/api/v1/machines/press1/setpoint",
                     {"point": point, "value": value}, 422, "action_point", api_env)
    with api_env.client("admin") as admin:
        def refused() -> list[dict[str, Any]]:
            items = admin.get("/api/v1/audit", params={
                "requested_by": role, "outcome": "refused", "machine": "press1",
                "action": "setpoint", "limit": 1000}).json()["items"]
            return [i for i in items if i["detail"].startswith("action_point")]
        found = wait_for(lambda: len(refused()) >= len(ACTION_POINTS) and refused(),
                         what="refusals in the audit")
    assert {(i["point"], i["value"]) for i in found} >= set(ACTION_POINTS)


@pytest.fixture(scope="module")
def lax_api(api_env: ApiEnv) -> Any:
    """A second API on the same plant, except that run and maintenance are free setpoints."""
    data = plant_data(api_env.workdir / "lax", api_env.plant.broker.port,
                      api_env.influx.url, api_env.keys, timeout_s=2.5)
    data["site"] = {**data["site"], "id": api_env.site}
    data["database"] = {**data["database"], "database": api_env.plant.database.database}
    data["api"]["mqtt_client_id"] = f"lax-{uuid.uuid4().hex[:8]}"
    data["api"]["port"] = free_port()
    for point in data["machines"]["weld1"]["points"]:
        if point["name"] in ("run", "maintenance"):
            point["free_setpoint"] = True
    server = ApiServer(load(copy.deepcopy(data)), data["api"]["port"]).start()
    yield server
    server.stop()


def test_free_setpoint_takes_the_rules_of_its_action(api_env: ApiEnv, lax_api: Any) -> None:
    """A setpoint of an action's point (allowed by free_setpoint) is that action: its
    permission (maintenance needs the maintenance role), its interlock (no start in
    maintenance mode), and the audit and the command name the action."""
    def client(role: str) -> httpx.Client:
        return httpx.Client(base_url=lax_api.url, timeout=30,
                            headers={"X-API-Key": api_env.keys[role]})

    sp = "/api/v1/machines/weld1/setpoint"
    with client("operator") as op, client("maintenance") as maint:
        before = len(api_env.edge.received)
        r = op.post(sp, json={"point": "maintenance", "value": True})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", r.text
        assert len(api_env.edge.received) == before
        r = maint.post(sp, json={"point": "maintenance", "value": True})
        assert r.status_code == 200, r.text
        assert r.json()["commands"][0]["action"] == "maintenance_on"
        sent = next(c for c in api_env.edge.received if c.id == r.json()["commands"][0]["id"])
        assert sent.control_action == "maintenance_on" and sent.role == "maintenance"
        wait_for(lambda: op.get("/api/v1/machines/weld1/state").json()["maintenance"],
                 what="maintenance on in the live view")
        before = len(api_env.edge.received)
        r = op.post(sp, json={"point": "run", "value": True})
        assert r.status_code == 409 and r.json()["error"]["code"] == "maintenance_interlock"
        assert len(api_env.edge.received) == before
        r = maint.post(sp, json={"point": "run", "value": True})
        assert r.status_code == 200 and r.json()["commands"][0]["action"] == "start"
        assert maint.post(sp, json={"point": "maintenance", "value": False}).status_code == 200
        r = op.post(sp, json={"point": "run", "value": False})
        assert r.status_code == 200 and r.json()["commands"][0]["action"] == "stop"
        command_id = r.json()["commands"][0]["id"]
    with api_env.client("admin") as admin:
        entries = wait_for(lambda: admin.get("/api/v1/audit", params={
            "command_id": command_id}).json()["items"], what="the stop in the audit")
    assert {e["action"] for e in entries} == {"stop"}
    assert all(e["point"] == "run" and e["value"] is False for e in entries)
