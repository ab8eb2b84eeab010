"""Running a control action: idempotency, the plant-file checks and the interlock (all
before anything is sent), the commands to the edge one after another (stopping at the
first that is not done), the audit of refusals, and the HTTP status of the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse

from shopfloor.api import audit as audit_log
from shopfloor.api.commands import CommandRecord, Outcome, WriteRequest
from shopfloor.api.control import Action, check_rules
from shopfloor.api.deps import MachineRef
from shopfloor.api.errors import ApiError, Unavailable
from shopfloor.api.idempotency import Answer, check_key, fingerprint
from shopfloor.api.models.common import error_body
from shopfloor.api.models.control import ControlOut, command_out
from shopfloor.api.runtime import Runtime
from shopfloor.api.security import Principal

STATUS_OF = {
    Outcome.DONE: 200,
    Outcome.REJECTED: 409,
    Outcome.FAILED: 502,
    Outcome.EXPIRED: 504,
    Outcome.TIMEOUT: 504,
    Outcome.PENDING: 504,
}
REPLAY_HEADER = "Idempotent-Replayed"
Planner = Callable[[], list[WriteRequest]]


async def run_action(runtime: Runtime, principal: Principal, machine: MachineRef, action: Action,
                     planner: Planner, idempotency_key: str | None, path: str,
                     body: Any = None) -> JSONResponse:
    """Execute an action once per Idempotency-Key; the answer as an HTTP response."""
    return await once(runtime, principal, idempotency_key, path, body,
                      lambda: _answer(runtime, principal, machine, action, planner))


async def once(runtime: Runtime, principal: Principal, idempotency_key: str | None,
               path: str, body: Any, act: Callable[[], Awaitable[Answer]]) -> JSONResponse:
    """`act` once per Idempotency-Key (every POST that acts: control, alarm actions): a
    retry gets the first answer; an exception means nothing was acted on."""
    if idempotency_key is None:
        status, content = await act()
        return JSONResponse(content, status)
    key = check_key(idempotency_key)
    store = runtime.idempotency
    print_ = fingerprint("POST", path, body)
    first, future = store.begin(principal.name, key, print_)
    if not first:
        status, content = await asyncio.shield(future)
        return JSONResponse(content, status, headers={REPLAY_HEADER: "true"})
    try:
        answer = await act()
    except BaseException as exc:  # nothing was acted on: a retry may act
        store.forget(principal.name, key, exc)
        raise
    store.finish(principal.name, key, answer, print_)  # on disk before the answer leaves
    return JSONResponse(answer[1], answer[0])


async def _answer(runtime: Runtime, principal: Principal, machine: MachineRef, action: Action,
                  planner: Planner) -> Answer:
    """(HTTP status, body). A refusal before sending is an answer too (and audited)."""
    try:
        writes = _checked(runtime, principal, machine, action, planner)
    except Unavailable:
        raise
    except ApiError as exc:
        return exc.status, error_body(exc.status, exc.code, exc.message)
    records = await _send_all(runtime, principal, machine, action, writes)
    final = next((r for r in records if r.outcome is not Outcome.DONE), records[-1])
    out = ControlOut(status=final.outcome, action=action.value, machine=machine.id,
                     detail=final.detail, commands=[command_out(r) for r in records])
    return STATUS_OF[final.outcome], out.model_dump(mode="json")


def _checked(runtime: Runtime, principal: Principal, machine: MachineRef, action: Action,
             planner: Planner) -> list[WriteRequest]:
    """The writes, each allowed by the control rules; a refusal is audited with the
    point and value it concerned."""
    write: WriteRequest | None = None
    try:
        in_maintenance = runtime.live.in_maintenance(machine.id)
        checked = []
        for write in planner():
            checked.append(check_rules(principal, machine.spec, action, write, in_maintenance))
    except ApiError as exc:
        runtime.metrics.refused.labels(action.value, exc.code).inc()
        runtime.audit.add(audit_log.AuditEntry(
            site=runtime.plant.site.id, line=machine.spec.line, machine=machine.id,
            action=action.value, outcome=audit_log.REFUSED, requested_by=principal.name,
            point=write.point if write else "", value=write.value if write else None,
            detail=f"{exc.code}: {exc.message}"))
        raise
    return checked


async def _send_all(runtime: Runtime, principal: Principal, machine: MachineRef, action: Action,
                    writes: list[WriteRequest]) -> list[CommandRecord]:
    records: list[CommandRecord] = []
    for write in writes:
        record = await runtime.bus.send(machine.id, machine.spec.line, write, principal.name,
                                        principal.role, runtime.settings.command_timeout_s)
        records.append(record)
        if record.outcome is not Outcome.DONE:
            break
    return records
