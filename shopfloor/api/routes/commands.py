"""Control actions (start, stop, setpoint, alarm acknowledge, changeover, maintenance
mode) and command lookup by id. Every action is checked against the plant file before
anything is sent; see docs/api.md for the status codes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import JSONResponse

from shopfloor.api import control, queries
from shopfloor.api.actions import run_action
from shopfloor.api.audit import recall
from shopfloor.api.control import Action
from shopfloor.api.deps import MachineDep, RuntimeDep, require
from shopfloor.api.errors import NotFound
from shopfloor.api.models.common import ERRORS, NOT_FOUND, UNAVAILABLE, ErrorOut
from shopfloor.api.models.control import (
    ChangeoverIn,
    CommandOut,
    ControlOut,
    MaintenanceIn,
    SetpointIn,
    command_out,
)
from shopfloor.api.routes import PREFIX
from shopfloor.api.security import Permission, Principal

router = APIRouter(
    prefix=PREFIX, tags=["control"],
    responses={**ERRORS, **NOT_FOUND, **UNAVAILABLE})

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200,
    description="a retried request with the same key gets the first answer, not a new action")]
OUTCOMES: dict[int | str, dict[str, Any]] = {
    200: {"model": ControlOut, "description": "done: every write confirmed with its read-back"},
    409: {"model": ControlOut | ErrorOut, "description": "rejected by the edge (ControlOut), "
          "maintenance interlock or Idempotency-Key reused (ErrorOut)"},
    422: {"model": ErrorOut, "description": "refused by the plant file: unknown or not "
          "writable point, wrong type, out of range, unknown product"},
    502: {"model": ControlOut, "description": "failed: the edge could not write the device"},
    504: {"model": ControlOut, "description": "timeout (no result in time) or expired"},
}
CommandId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Operator = Annotated[Principal, Depends(require(Permission.OPERATE))]
Setter = Annotated[Principal, Depends(require(Permission.SETPOINT))]
Changer = Annotated[Principal, Depends(require(Permission.CHANGEOVER))]
Maintainer = Annotated[Principal, Depends(require(Permission.MAINTENANCE))]


def _route(path: str, summary: str) -> Any:
    return router.post(path, response_model=ControlOut, responses=OUTCOMES, summary=summary)


@_route("/machines/{machine}/start", "Start a machine (write control.run = true)")
async def start(runtime: RuntimeDep, principal: Operator, machine: MachineDep,
                idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Refused (409) while maintenance mode is on, unless the key has the maintenance role."""
    return await run_action(runtime, principal, machine, Action.START,
                            lambda: control.plan(machine.spec, Action.START), idempotency_key,
                            f"/machines/{machine.id}/start")


@_route("/machines/{machine}/stop", "Stop a machine (write control.run = false)")
async def stop(runtime: RuntimeDep, principal: Operator, machine: MachineDep,
               idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return await run_action(runtime, principal, machine, Action.STOP,
                            lambda: control.plan(machine.spec, Action.STOP), idempotency_key,
                            f"/machines/{machine.id}/stop")


@_route("/machines/{machine}/alarm-ack", "Acknowledge the machine's alarm")
async def alarm_ack(runtime: RuntimeDep, principal: Operator, machine: MachineDep,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return await run_action(runtime, principal, machine, Action.ALARM_ACK,
                            lambda: control.plan(machine.spec, Action.ALARM_ACK),
                            idempotency_key, f"/machines/{machine.id}/alarm-ack")


@_route("/machines/{machine}/setpoint", "Write a setpoint (any writable point)")
async def setpoint(body: SetpointIn, runtime: RuntimeDep, principal: Setter,
                   machine: MachineDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """The point must exist, be writable and the value be of its type within min/max."""
    return await run_action(runtime, principal, machine, Action.SETPOINT,
                            lambda: [control.write(machine.spec, body.point, body.value)],
                            idempotency_key, f"/machines/{machine.id}/setpoint",
                            body.model_dump())


@_route("/machines/{machine}/changeover", "Change product (and work order)")
async def changeover(body: ChangeoverIn, runtime: RuntimeDep, principal: Changer,
                     machine: MachineDep, idempotency_key: IdempotencyKey = None
                     ) -> JSONResponse:
    """Writes the product's code to control.product, then the work order (when given) to
    control.work_order; stops at the first write that is not done."""
    return await run_action(runtime, principal, machine, Action.CHANGEOVER,
                            lambda: control.plan_changeover(machine.spec, body.product,
                                                            body.work_order),
                            idempotency_key, f"/machines/{machine.id}/changeover",
                            body.model_dump())


@_route("/machines/{machine}/maintenance", "Maintenance mode on or off (a planned stop)")
async def maintenance(body: MaintenanceIn, runtime: RuntimeDep, principal: Maintainer,
                      machine: MachineDep, idempotency_key: IdempotencyKey = None
                      ) -> JSONResponse:
    action = Action.MAINTENANCE_ON if body.on else Action.MAINTENANCE_OFF
    return await run_action(runtime, principal, machine, action,
                            lambda: control.plan(machine.spec, action), idempotency_key,
                            f"/machines/{machine.id}/maintenance", body.model_dump())


@router.get("/commands/{command_id}", response_model=CommandOut, responses=NOT_FOUND,
            summary="A command and its outcome, by id")
async def get_command(runtime: RuntimeDep, principal: Operator, command_id: CommandId
                      ) -> CommandOut:
    """Also for commands that timed out: a result arriving later is recorded (`late`).
    Commands no longer in memory (older, or sent before a restart) come from the audit."""
    record = runtime.records.get(command_id)
    if record is None:
        rows = await runtime.influx.rows(queries.audit(
            runtime.plant.site.id, queries.AuditFilter(command_id=command_id), None, 20, 0))
        record = recall(rows)
    # A command on a line the key may not see does not exist for it (as in deps).
    if record is None or not principal.may_see_line(record.line):
        raise NotFound(f"no command {command_id!r}", "unknown_command")
    return command_out(record)
