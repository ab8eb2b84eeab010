"""People's actions on alarms, the API's half: an `AlarmCommand` (id, expiry, who, which
role) published on `shopfloor/v1/{site}/alarms/cmd`, the alarm component's
`AlarmCommandResult` awaited up to the command timeout (docs/alarms.md, "Actions").

Only the API may publish on that topic and only the alarm component answer on its result
topic (the broker's ACL, shared.access), so a result's id is all it takes to match it.
Every action is audited when sent and when its outcome is known (`Listener`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from shopfloor.api.commands import Outcome, Publish
from shopfloor.shared import topics
from shopfloor.shared.alarm_rules import RuleKind
from shopfloor.shared.contract import (
    AlarmAction,
    AlarmCommand,
    AlarmCommandResult,
    AlarmPayload,
    utc_now,
)
from shopfloor.shared.plant import Role

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlarmRequest:
    """What a person asks, checked by the route (permission, line, the instance exists)."""

    machine: str
    line: str
    rule: RuleKind
    action: AlarmAction
    comment: str
    shelve_s: float | None
    requested_by: str
    role: Role


@dataclass(frozen=True, slots=True)
class AlarmOutcome:
    id: str
    request: AlarmRequest
    outcome: Outcome
    detail: str = ""
    alarm: AlarmPayload | None = None
    late: bool = False
    """The answer came after the API had answered `timeout`."""


Listener = Callable[[AlarmOutcome], None]
MAX_TIMED_OUT = 1000
"""Actions that timed out, remembered (newest) so that a late answer is audited."""
AUDIT_ACTIONS = {AlarmAction.ACK: "acknowledge", AlarmAction.SHELVE: "shelve",
                 AlarmAction.UNSHELVE: "unshelve"}
"""The `action` of an alarm action's audit entries (the rule is their `point`)."""


class AlarmBus:
    """Publishes alarm actions and matches the component's answers by id. `deliver` runs
    on the event loop (handed over by the result inbox)."""

    def __init__(self, site: str, publish: Publish, listener: Listener) -> None:
        self._site = site
        self._publish = publish
        self._listener = listener
        self._waiting: dict[str, asyncio.Future[AlarmCommandResult]] = {}
        self._timed_out: OrderedDict[str, AlarmRequest] = OrderedDict()

    async def send(self, request: AlarmRequest, timeout_s: float) -> AlarmOutcome:
        command = AlarmCommand(
            id=uuid.uuid4().hex, action=request.action, machine=request.machine,
            rule=request.rule, comment=request.comment, shelve_s=request.shelve_s,
            requested_by=request.requested_by, role=request.role,
            expires_at=utc_now() + dt.timedelta(seconds=timeout_s))
        future: asyncio.Future[AlarmCommandResult] = (
            asyncio.get_running_loop().create_future())
        self._waiting[command.id] = future
        try:
            self._publish(topics.alarm_cmd_topic(self._site), command.to_json())
            self._listener(AlarmOutcome(command.id, request, Outcome.PENDING))
            result = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            outcome = AlarmOutcome(command.id, request, Outcome.TIMEOUT,
                                   f"no answer from the alarm component within {timeout_s:g} s")
            self._timed_out[command.id] = request
            while len(self._timed_out) > MAX_TIMED_OUT:
                self._timed_out.popitem(last=False)
        else:
            outcome = AlarmOutcome(command.id, request, Outcome(result.status.value),
                                   result.detail, result.alarm)
        finally:
            self._waiting.pop(command.id, None)
        self._listener(outcome)
        return outcome

    def is_pending(self, command_id: str) -> bool:
        return command_id in self._waiting

    def deliver(self, result: AlarmCommandResult, _line: str = "", _machine: str = "") -> None:
        """The component's answer: wakes its waiter, or records a late answer to one that
        timed out (audited with `late`, once); another API replica's is only logged."""
        future = self._waiting.get(result.id)
        if future is not None and not future.done():
            future.set_result(result)
            return
        request = self._timed_out.pop(result.id, None)
        if request is None:
            log.debug("alarm action result %s: nobody waits for it", result.id)
            return
        log.info("late answer to alarm action %s: %s", result.id, result.status)
        self._listener(AlarmOutcome(result.id, request, Outcome(result.status.value),
                                    result.detail, result.alarm, late=True))
