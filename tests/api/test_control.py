"""Control actions over HTTP against a real broker and InfluxDB, answered by the edge
stand-in: every outcome, every refusal before sending, idempotency, the interlock."""

from __future__ import annotations

import uuid

import httpx

from tests.api.conftest import ApiEnv
from tests.api.harness import wait_for


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
    _refused(admin, sp, {"point": "work_order", "value": "x" * 25}, 422, "out_of_range",
             api_env)
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
