"""The demo's first control action, made by `shopfloor local up` after a backfill: an
operator confirms the first machine's speed (its current value) through the API, so the
control path (API -> MQTT -> edge -> Modbus) and the audit dashboard have something to
show from the first minute. Only for a plant with the example's development keys
(secret `dev-operator`): a real plant's keys are not known here."""

from __future__ import annotations

import httpx

from shopfloor.api.security import hash_key
from shopfloor.shared.plant import Plant, Role

DEV_OPERATOR = "dev-operator"
TIMEOUT_S = 20.0


def dev_key(plant: Plant, role: Role = Role.OPERATOR) -> str | None:
    """The development secret `dev-<role>`, if the plant (in dev mode) has it as a key."""
    secret = f"dev-{role.value}"
    found = any(k.hash == hash_key(secret) and k.role is role for k in plant.api.keys)
    return secret if plant.api.dev_mode and found else None


def confirm_speed(plant: Plant) -> str:
    """Write the first speed-controlled machine's speed setpoint to what it is (100 %);
    returns one line saying what happened."""
    key = dev_key(plant)
    machine = next((m for m, spec in plant.machines.items() if spec.control.speed), None)
    if key is None or machine is None:
        return "skipped (no development operator key or no speed setpoint in the plant)"
    point = plant.machines[machine].control.speed
    host = "127.0.0.1" if plant.api.host in ("0.0.0.0", "::", "") else plant.api.host
    url = f"http://{host}:{plant.api.port}/api/v1/machines/{machine}/setpoint"
    try:
        reply = httpx.post(url, json={"point": point, "value": 100},
                           headers={"X-API-Key": key}, timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:
        return f"{machine} {point}=100: no answer from the API ({exc})"
    try:
        outcome = reply.json().get("status", reply.status_code)
    except ValueError:
        outcome = reply.status_code
    if outcome == "timeout":  # the edge is still busy queueing the history
        return (f"{machine} {point}=100 through the API: sent, not answered yet (the "
                "control audit records a late result)")
    return f"{machine} {point}=100 through the API: {outcome} (see the control audit)"
