"""People's actions on alarms, the alarm component's half: an `AlarmCommand` from the API
is checked (its expiry, the permission of the role it carries, that the alarm instance
exists) and applied to the engine at most once per id: a repeated id (a QoS 1
redelivery) gets the first answer again and changes nothing. The answers of the last
`capacity` commands are held in memory, and after a restart the id of each instance's
last action comes back with its retained payload (`last_command_id`, `remember`), so a
command applied just before a restart is not applied again after it. Pure: the caller
passes the time."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict

from shopfloor.alarms.engine import Engine, Record, payload_of
from shopfloor.alarms.errors import LifecycleError
from shopfloor.alarms.lifecycle import Event
from shopfloor.shared.contract import (
    AlarmAction,
    AlarmCommand,
    AlarmCommandResult,
    AlarmPayload,
    CommandStatus,
)
from shopfloor.shared.control_rules import ALARM_PERMISSIONS, can, expiry_refusal
from shopfloor.shared.enums import EventKind

CAPACITY = 10_000
EVENT_OF = {AlarmAction.ACK: EventKind.ACK, AlarmAction.SHELVE: EventKind.SHELVE,
            AlarmAction.UNSHELVE: EventKind.UNSHELVE}


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class Actions:
    def __init__(self, engine: Engine, capacity: int = CAPACITY) -> None:
        self._engine = engine
        self._capacity = capacity
        self._answers: OrderedDict[str, AlarmCommandResult] = OrderedDict()

    def remember(self, payload: AlarmPayload) -> None:
        """At start: the action that made a retained alarm state was applied."""
        if payload.last_command_id:
            self._keep(AlarmCommandResult(id=payload.last_command_id,
                                          status=CommandStatus.DONE, alarm=payload,
                                          ts=payload.ts))

    def handle(self, command: AlarmCommand, now: float) -> tuple[AlarmCommandResult,
                                                                  Record | None]:
        """The answer to `command` and the transition it made (None: nothing changed)."""
        first = self._answers.get(command.id)
        if first is not None:
            return first, None
        record: Record | None = None
        refusal = self._refusal(command, now)
        if refusal is not None:
            status, detail = refusal
        else:
            status, detail = CommandStatus.DONE, ""
            try:
                record = self._engine.act(command.machine, command.rule,
                                          self._event(command, now))
            except LifecycleError as exc:
                status, detail = CommandStatus.REJECTED, str(exc)
        instance = self._engine.instances.get((command.machine, command.rule))
        alarm = None if instance is None else payload_of(
            self._engine.site, instance, record.transition if record else None, now)
        result = AlarmCommandResult(id=command.id, status=status, detail=detail,
                                    alarm=alarm, ts=_ts(now))
        if status is not CommandStatus.EXPIRED:  # an expired id may not come back anyway
            self._keep(result)
        return result, record

    def _refusal(self, command: AlarmCommand, now: float) -> tuple[CommandStatus, str] | None:
        refusal = expiry_refusal(command.expires_at, _ts(now))
        if refusal is not None:
            return refusal
        permission = ALARM_PERMISSIONS[command.action]
        if not can(command.role, permission):
            return CommandStatus.REJECTED, (f"role {command.role} may not {command.action} "
                                            f"an alarm: needs the {permission} permission")
        if (command.machine, command.rule) not in self._engine.instances:
            return CommandStatus.REJECTED, (f"no alarm {command.rule} on machine "
                                            f"{command.machine!r} (rule off or unknown)")
        return None

    @staticmethod
    def _event(command: AlarmCommand, now: float) -> Event:
        until = None if command.shelve_s is None else now + command.shelve_s
        return Event(EVENT_OF[command.action], now, command.requested_by, command.comment,
                     until, command.id)

    def _keep(self, result: AlarmCommandResult) -> None:
        self._answers[result.id] = result
        self._answers.move_to_end(result.id)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)
