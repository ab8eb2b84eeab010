"""The command bus: sends a write to the edge as a `contract.Command` (id, expiry, the
caller's key name), waits for the edge's `CommandResult` up to a timeout, and keeps a
bounded record of every command so that one that timed out can be looked up later by id
(a result arriving after the timeout is recorded as late).

Command ids start with 8 hex digits derived from the API's MQTT client id (then 24
random ones): every API instance of a site receives every result, and a result for an id
not in memory is this instance's (sent before a restart, or forgotten) only when the
prefix is its own; results of other instances are theirs to record.

A result counts only when it arrives on the command's own machine topic: the broker's ACL
lets only the agent that owns a machine publish on that machine's `cmd/result` topic, so
the topic names the agent that answered. A result for a pending or timed-out command on
another machine's topic, or for an id of ours that no command has, is dropped and counted
(`Dropped`): it never marks a command done."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from shopfloor.shared import topics
from shopfloor.shared.contract import Command, CommandResult, PointValue, utc_now
from shopfloor.shared.enums import ControlAction
from shopfloor.shared.plant import Role

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """A command's outcome as the API reports it."""

    PENDING = "pending"  # sent, no result yet
    DONE = "done"
    REJECTED = "rejected"  # the edge refused it (reason in detail)
    FAILED = "failed"  # the edge tried and the device write failed
    EXPIRED = "expired"  # the edge received it after expires_at and did not execute it
    TIMEOUT = "timeout"  # no result within the timeout (may still arrive: see late)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """One point write an action needs (already checked against the plant file).
    `action` is what the write really is (shared.control_rules.effective_action), set
    once the control rules allowed it; None before."""

    point: str
    value: PointValue
    action: ControlAction | None = None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: str
    machine: str
    line: str
    action: str
    point: str
    value: PointValue
    requested_by: str
    requested_at: dt.datetime
    expires_at: dt.datetime
    outcome: Outcome = Outcome.PENDING
    detail: str = ""
    readback: PointValue | None = None
    completed_at: dt.datetime | None = None
    late: bool = False


def id_prefix(instance: str) -> str:
    """The 8 hex digits that start every command id of the instance `instance`."""
    return hashlib.sha256(instance.encode()).hexdigest()[:8]


def new_command_id(prefix: str) -> str:
    """32 hex digits, like a uuid4's hex: the instance's prefix, then 24 random digits."""
    return prefix + uuid.uuid4().hex[len(prefix):]


class RecordStore:
    """The last `capacity` command records, by id (oldest dropped first)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._records: OrderedDict[str, CommandRecord] = OrderedDict()

    def put(self, record: CommandRecord) -> None:
        self._records[record.id] = record
        self._records.move_to_end(record.id)
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)

    def get(self, command_id: str) -> CommandRecord | None:
        return self._records.get(command_id)


Publish = Callable[[str, bytes], None]
Listener = Callable[[CommandRecord], None]
Unknown = Callable[[CommandResult, str, str], None]
"""Called with a result for one of our ids not in memory, its line and its machine."""
Drop = Callable[[str], None]
"""Called with the reason (a `Dropped` value) of each result that does not count."""


class Dropped(StrEnum):
    """Why a command result was dropped (the label of shopfloor_api_results_dropped_total)."""

    MALFORMED = "malformed"  # not a CommandResult, or not on a machine topic of the plant
    OVERFLOW = "overflow"  # more results waiting than the API handles (a flood)
    WRONG_TOPIC = "wrong_topic"  # not on the command's own machine topic
    NOT_PENDING = "not_pending"  # an id of ours that no known command has
    FINISHED = "finished"  # the command already has its result
    LOOKUP_BUSY = "lookup_busy"  # too many audit lookups of unknown ids running
    UNVERIFIABLE = "unverifiable"  # the audit could not be read to match it


class CommandBus:
    """Publishes commands and matches results to waiting requests. `deliver` must run on
    the event loop (the MQTT link hands results over with `call_soon_threadsafe`).
    `listener` sees each record when sent (outcome pending) and when finished;
    `on_unknown` a result for one of this instance's ids that is not in memory."""

    def __init__(self, site: str, publish: Publish, store: RecordStore,
                 listener: Listener, *, instance: str, on_unknown: Unknown,
                 on_drop: Drop) -> None:
        self._site = site
        self._on_drop = on_drop
        self._publish = publish
        self._store = store
        self._listener = listener
        self._prefix = id_prefix(instance)
        self._on_unknown = on_unknown
        self._waiting: dict[str, tuple[asyncio.Future[CommandResult], str, str]] = {}

    async def send(self, machine: str, line: str, write: WriteRequest, requested_by: str,
                   role: Role, timeout_s: float) -> CommandRecord:
        """Send one write (checked by the control rules: `write.action` set) and wait for
        its result; the record says what happened."""
        if write.action is None:  # not through control.check_rules: never sent
            raise ValueError(f"write of {write.point} not checked by the control rules")
        action = write.action.value
        now = utc_now()
        record = CommandRecord(
            id=new_command_id(self._prefix), machine=machine, line=line, action=action,
            point=write.point, value=write.value, requested_by=requested_by,
            requested_at=now, expires_at=now + dt.timedelta(seconds=timeout_s),
        )
        command = Command(id=record.id, point=write.point, value=write.value,
                          expires_at=record.expires_at, requested_by=requested_by,
                          control_action=write.action, role=role)
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._waiting[record.id] = (future, line, machine)
        try:
            self._publish(topics.machine_topic(self._site, line, machine, topics.CMD),
                          command.to_json())
        except BaseException:  # not sent: nothing to wait for, nothing to record
            self._waiting.pop(record.id, None)
            raise
        self._store.put(record)
        self._listener(record)
        try:
            result = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            record = replace(record, outcome=Outcome.TIMEOUT, completed_at=utc_now(),
                             detail=f"no result from the edge within {timeout_s:g} s")
            self._finish(record)
            return record
        finally:  # also when the request is cancelled: the record stays pending
            self._waiting.pop(record.id, None)
        record = _apply_result(record, result, late=False)
        self._finish(record)
        return record

    def is_pending(self, command_id: str) -> bool:
        """Whether a request waits for this command's result (safe from any thread: one
        dict lookup)."""
        return command_id in self._waiting

    def owns(self, command_id: str) -> bool:
        """Whether `command_id` was made by this instance (see the module docstring)."""
        return command_id.startswith(self._prefix)

    def deliver(self, result: CommandResult, line: str, machine: str) -> None:
        """A result from the edge, from the topic of `line`/`machine`: wake its waiter,
        record it as late, hand one of ours not in memory to `on_unknown`, or drop it."""
        waiting = self._waiting.get(result.id)
        if waiting is not None:
            future, its_line, its_machine = waiting
            if (line, machine) != (its_line, its_machine):
                self._drop(Dropped.WRONG_TOPIC, result, line, machine)
            elif not future.done():
                future.set_result(result)
            return
        record = self._store.get(result.id)
        if record is None:
            if not self.owns(result.id):
                log.debug("result for command %s of another instance ignored", result.id)
                return
            self._on_unknown(result, line, machine)
            return
        self.record_late(record, result, line, machine)

    def record_late(self, record: CommandRecord, result: CommandResult, line: str,
                    machine: str) -> None:
        """Record `result` (from the topic of `line`/`machine`) as late on `record`,
        unless it comes from another machine's topic or the command already finished
        (a redelivered or repeated result)."""
        if (line, machine) != (record.line, record.machine):
            self._drop(Dropped.WRONG_TOPIC, result, line, machine)
            return
        if record.outcome not in (Outcome.TIMEOUT, Outcome.PENDING):
            self._on_drop(Dropped.FINISHED)
            log.debug("result for finished command %s ignored", result.id)
            return
        log.info("late result for command %s: %s", result.id, result.status)
        self._finish(_apply_result(record, result, late=True))

    def _drop(self, reason: Dropped, result: CommandResult, line: str, machine: str) -> None:
        self._on_drop(reason)
        log.debug("result for command %s on %s/%s dropped: %s", result.id, line, machine,
                    reason.value)

    def _finish(self, record: CommandRecord) -> None:
        self._store.put(record)
        self._listener(record)


def _apply_result(record: CommandRecord, result: CommandResult, late: bool) -> CommandRecord:
    return replace(record, outcome=Outcome(result.status.value), detail=result.detail,
                   readback=result.readback, completed_at=result.ts, late=late)
