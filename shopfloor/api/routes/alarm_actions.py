"""Actions on an alarm: acknowledge (with a comment), shelve (for a duration, with a
reason), unshelve. Operators acknowledge on their lines, supervisors shelve
(shared.control_rules.ALARM_PERMISSIONS); a line-restricted key sees no alarm of another
line (404), nor the site-wide alarms of the collectors. The action goes to the alarm
component, which applies it at most once and answers (api/alarm_bus.py); an
Idempotency-Key makes a retry get the first answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from shopfloor.api.actions import STATUS_OF, once
from shopfloor.api.alarm_bus import AlarmBus, AlarmRequest
from shopfloor.api.deps import PlantDep, PrincipalDep, RuntimeDep, require, visible_machine
from shopfloor.api.errors import NotFound
from shopfloor.api.idempotency import Answer
from shopfloor.api.models.alarms import AckIn, AlarmActionOut, ShelveIn, UnshelveIn
from shopfloor.api.models.common import ERRORS, NOT_FOUND, UNAVAILABLE, ErrorOut
from shopfloor.api.routes import PREFIX
from shopfloor.api.routes.commands import IdempotencyKey
from shopfloor.api.runtime import Runtime
from shopfloor.api.security import Permission, Principal
from shopfloor.shared.alarm_rules import SITE_KINDS, SITE_LINE, RuleKind, rules_for, site_rules
from shopfloor.shared.contract import AlarmAction

router = APIRouter(prefix=PREFIX, tags=["alarms"],
                   responses={**ERRORS, **NOT_FOUND, **UNAVAILABLE})
OUTCOMES: dict[int | str, dict[str, Any]] = {
    200: {"model": AlarmActionOut, "description": "done: the alarm's new state in `alarm`"},
    409: {"model": AlarmActionOut | ErrorOut, "description": "rejected: the alarm's state "
          "does not allow it (AlarmActionOut), or Idempotency-Key reused (ErrorOut)"},
    504: {"model": AlarmActionOut, "description": "no answer from the alarm component"},
}
IDENT = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


@dataclass(frozen=True, slots=True)
class Target:
    """The alarm instance acted on: a machine's, or a collector's (line `_site`)."""

    line: str
    machine: str
    rule: RuleKind


async def _target(plant: PlantDep, principal: PrincipalDep, rule: RuleKind,
                  machine: Annotated[str, Path(pattern=IDENT, description="machine id, or "
                                               "the collector's for collector_lag and "
                                               "dead_letters", examples=["press1"])]
                  ) -> Target:
    """404 for a machine the key may not see (deps.visible_machine), a rule the machine
    has switched off, and a collector's alarm for a line-restricted key (site-wide)."""
    unknown = NotFound(f"{machine!r} has no {rule} alarm (unknown, or rule off)",
                       "unknown_alarm")
    if rule in SITE_KINDS:
        if principal.lines is not None or rule not in site_rules(plant.alarms):
            raise unknown
        return Target(SITE_LINE, machine, rule)
    line = visible_machine(plant, principal, machine).line
    if rule not in rules_for(plant.alarms, line, machine):
        raise unknown
    return Target(line, machine, rule)


TargetDep = Annotated[Target, Depends(_target)]
Acker = Annotated[Principal, Depends(require(Permission.ACKNOWLEDGE))]
Shelver = Annotated[Principal, Depends(require(Permission.SHELVE))]


def _route(action: str, summary: str) -> Any:
    return router.post(f"/alarms/{{machine}}/{{rule}}/{action}", response_model=AlarmActionOut,
                       responses=OUTCOMES, summary=summary)


@_route("ack", "Acknowledge an alarm, with a comment")
async def ack(body: AckIn, runtime: RuntimeDep, principal: Acker, target: TargetDep,
              idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Active unacknowledged → active acknowledged; cleared unacknowledged → normal."""
    return await _act(runtime, principal, target, AlarmAction.ACK, body.comment, None,
                      idempotency_key, body.model_dump())


@_route("shelve", "Shelve an alarm for a while, with a reason")
async def shelve(body: ShelveIn, runtime: RuntimeDep, principal: Shelver, target: TargetDep,
                 idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Suppressed until `duration_s` from now (then it unshelves by itself)."""
    return await _act(runtime, principal, target, AlarmAction.SHELVE, body.reason,
                      body.duration_s, idempotency_key, body.model_dump())


@_route("unshelve", "End a shelve now")
async def unshelve(body: UnshelveIn, runtime: RuntimeDep, principal: Shelver,
                   target: TargetDep, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    return await _act(runtime, principal, target, AlarmAction.UNSHELVE, body.comment,
                      None, idempotency_key, body.model_dump())


async def _act(runtime: Runtime, principal: Principal, target: Target,
               action: AlarmAction, comment: str, shelve_s: float | None,
               idempotency_key: str | None, body: dict[str, Any]) -> JSONResponse:
    machine, rule = target.machine, target.rule
    request = AlarmRequest(machine, target.line, rule, action, comment, shelve_s,
                           principal.name, principal.role)
    assert runtime.alarms is not None  # set in open_runtime
    bus: AlarmBus = runtime.alarms

    async def answer() -> Answer:
        outcome = await bus.send(request, runtime.settings.command_timeout_s)
        out = AlarmActionOut(status=outcome.outcome, action=action, machine=machine,
                             rule=rule, command_id=outcome.id, detail=outcome.detail,
                             alarm=outcome.alarm)
        return STATUS_OF[outcome.outcome], out.model_dump(mode="json", exclude_none=True)

    return await once(runtime, principal, idempotency_key,
                      f"/alarms/{machine}/{rule}/{action}", body, answer)
