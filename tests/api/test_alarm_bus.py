"""The API's alarm action bus (api/alarm_bus.py), its matching logic on a real event loop:
an answer in time wakes its request; one after the timeout is recorded once as late;
answers nobody asked for change nothing. (Over the broker: tests/alarms/test_people.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt

from shopfloor.api.alarm_bus import AlarmBus, AlarmOutcome, AlarmRequest
from shopfloor.api.commands import Outcome
from shopfloor.shared.alarm_rules import RuleKind
from shopfloor.shared.contract import (
    AlarmAction,
    AlarmCommand,
    AlarmCommandResult,
    CommandStatus,
)
from shopfloor.shared.plant import Role

REQUEST = AlarmRequest("press1", "line1", RuleKind.MACHINE_STOPPED, AlarmAction.ACK, "ok",
                       None, "ann", Role.OPERATOR)


def _answer(command_id: str, status: CommandStatus = CommandStatus.DONE) -> AlarmCommandResult:
    return AlarmCommandResult(id=command_id, status=status, ts=dt.datetime.now(dt.UTC))


class Recorder:
    def __init__(self) -> None:
        self.sent: list[AlarmCommand] = []
        self.outcomes: list[AlarmOutcome] = []

    def publish(self, _topic: str, payload: bytes) -> None:
        self.sent.append(AlarmCommand.model_validate_json(payload))


def test_an_answer_in_time_and_a_late_one() -> None:
    async def scenario() -> tuple[Recorder, AlarmOutcome, AlarmOutcome]:
        seen = Recorder()
        bus = AlarmBus("demo", seen.publish, seen.outcomes.append)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: bus.deliver(_answer(seen.sent[0].id)))
        in_time = await bus.send(REQUEST, 5.0)
        timed_out = await bus.send(REQUEST, 0.05)
        late = _answer(seen.sent[1].id, CommandStatus.REJECTED)
        bus.deliver(late)
        bus.deliver(late)  # a redelivery: recorded once
        bus.deliver(_answer("someone-elses"))
        return seen, in_time, timed_out

    seen, in_time, timed_out = asyncio.run(scenario())
    assert in_time.outcome is Outcome.DONE and timed_out.outcome is Outcome.TIMEOUT
    assert [(o.outcome, o.late) for o in seen.outcomes] == [
        (Outcome.PENDING, False), (Outcome.DONE, False),
        (Outcome.PENDING, False), (Outcome.TIMEOUT, False), (Outcome.REJECTED, True)]
    assert seen.outcomes[-1].id == seen.sent[1].id == timed_out.id
    assert seen.sent[0].role is Role.OPERATOR and seen.sent[0].requested_by == "ann"
