"""Actions on an alarm: acknowledge (with a comment), shelve (for a duration, with a
reason), unshelve. Operators acknowledge on their lines, supervisors shelve
(shared.control_rules.ALARM_PERMISSIONS); a line-restricted key sees no alarm of another
line (404). The action goes to the alarm component, which applies it at most once and
answers (api/alarm_bus.py); an Idempotency-Key makes a retry get the first answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shopfloor.api.actions import STATUS_OF, once
from shopfloor.api.alarm_bus import AlarmBus, AlarmRequest
from shopfloor.api.deps import MachineDep, MachineRef, RuntimeDep, require
from shopfloor.api.errors import NotFound
from shopfloor.api.idempotency import Answer
from shopfloor.api.models.alarms import AckIn, AlarmActionOut, ShelveIn, UnshelveIn
from shopfloor.api.models.common import ERRORS, NOT_FOUND, UNAVAILABLE, ErrorOut
from shopfloor.api.routes import PREFIX
from shopfloor.api.routes.commands import IdempotencyKey
from shopfloor.api.runtime import Runtime
from shopfloor.api.security import Permission, Principal
from shopfloor.shared.alarm_rules import RuleKind, rules_for
from shopfloor.shared.contract import AlarmAction

router = APIRouter(prefix=PREFIX, tags=["alarms"],
                   responses={**ERRORS, **NOT_FOUND, **UNAVAILABLE})
OUTCOMES: dict[int | str, dict[str, Any]] = {
    200: {"model": AlarmActionOut, "description": "done: the alarm's new state in `alarm`"},
    409: {"model": AlarmActionOut | ErrorOut, "description": "rejected: the alarm's state "
          "does not allow it (AlarmActionOut), or Idempotency-Key reused (ErrorOut)"},
    504: {"model": AlarmActionOut, "description": "no answer from the alarm component"},
}
Acker = Annotated[Principal, Depends(require(Permission.ACKNOWLEDGE))]
Shelver = Annotated[Principal, Depends(require(Permission.SHELVE))]


def _route(action: str, summary: str) -> Any:
    return router.post(f"/alarms/{{machine}}/{{rule}}/{action}", response_model=AlarmActionOut,
                       responses=OUTCOMES, summary=summary)


@_route("ack", "Acknowledge an alarm, with a comment")
async def ack(body: AckIn, runtime: RuntimeDep, principal: Acker, machine: MachineDep,
              rule: RuleKind, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Active unacknowledged → active acknowledged; cleared unacknowledged → normal."""
    return await _act(runtime, principal, machine, rule, AlarmAction.ACK, body.comment, None,
                      idempotency_key, body.model_dump())


@_route("shelve", "Shelve an alarm for a while, with a reason")
async def shelve(body: ShelveIn, runtime: RuntimeDep, principal: Shelver, machine: MachineDep,
                 rule: RuleKind, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Suppressed until `duration_s` from now (then it unshelves by itself)."""
    return await _act(runtime, principal, machine, rule, AlarmAction.SHELVE, body.reason,
                      body.duration_s, idempotency_key, body.model_dump())


@_route("unshelve", "End a shelve now")
async def unshelve(body: UnshelveIn, runtime: RuntimeDep, principal: Shelver,
                   machine: MachineDep, rule: RuleKind,
                   idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return await _act(runtime, principal, machine, rule, AlarmAction.UNSHELVE, body.comment,
                      None, idempotency_key, body.model_dump())


async def _act(runtime: Runtime, principal: Principal, machine: MachineRef, rule: RuleKind,
               action: AlarmAction, comment: str, shelve_s: float | None,
               idempotency_key: str | None, body: dict[str, Any]) -> JSONResponse:
    if rule not in rules_for(runtime.plant.alarms, machine.spec.line, machine.id):
        raise NotFound(f"machine {machine.id!r} has no {rule} alarm (rule off)",
                       "unknown_alarm")
    request = AlarmRequest(machine.id, machine.spec.line, rule, action, comment, shelve_s,
                           principal.name, principal.role)
    assert runtime.alarms is not None  # set in open_runtime
    bus: AlarmBus = runtime.alarms

    async def answer() -> Answer:
        outcome = await bus.send(request, runtime.settings.command_timeout_s)
        out = AlarmActionOut(status=outcome.outcome, action=action, machine=machine.id,
                             rule=rule, command_id=outcome.id, detail=outcome.detail,
                             alarm=outcome.alarm)
        return STATUS_OF[outcome.outcome], out.model_dump(mode="json", exclude_none=True)

    return await once(runtime, principal, idempotency_key,
                      f"/alarms/{machine.id}/{rule}/{action}", body, answer)
