"""The command bus: sends a write to the edge as a `contract.Command` (id, expiry, the
caller's key name), waits for the edge's `CommandResult` up to a timeout, and keeps a
bounded record of every command so that one that timed out can be looked up later by id
(a result arriving after the timeout is recorded as late).

Command ids start with 8 hex digits derived from the API's MQTT client id (then 24
random ones): every API instance of a site receives every result, and a result for an id
not in memory is this instance's (sent before a restart, or forgotten) only when the
prefix is its own; results of other instances are theirs to record."""

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


class CommandBus:
    """Publishes commands and matches results to waiting requests. `deliver` must run on
    the event loop (the MQTT link hands results over with `call_soon_threadsafe`).
    `listener` sees each record when sent (outcome pending) and when finished;
    `on_unknown` a result for one of this instance's ids that is not in memory."""

    def __init__(self, site: str, publish: Publish, store: RecordStore,
                 listener: Listener, *, instance: str, on_unknown: Unknown) -> None:
        self._site = site
        self._publish = publish
        self._store = store
        self._listener = listener
        self._prefix = id_prefix(instance)
        self._on_unknown = on_unknown
        self._waiting: dict[str, asyncio.Future[CommandResult]] = {}

    async def send(self, machine: str, line: str, write: WriteRequest, requested_by: str,
                   role: Role, timeout_s: float) -> CommandRecord:
        """Send one write (checked by the control rules: `write.action` set) and wait for
        its result; the record says what happened."""
        assert write.action is not None, "a write is sent only once the rules allowed it"
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
        self._waiting[record.id] = future
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

    def owns(self, command_id: str) -> bool:
        """Whether `command_id` was made by this instance (see the module docstring)."""
        return command_id.startswith(self._prefix)

    def deliver(self, result: CommandResult, line: str = "", machine: str = "") -> None:
        """A result from the edge (on `line`/`machine`, from its topic): wake its waiter,
        record it as late, or hand one of ours not in memory to `on_unknown`."""
        future = self._waiting.get(result.id)
        if future is not None:
            if not future.done():
                future.set_result(result)
            return
        record = self._store.get(result.id)
        if record is None:
            if not self.owns(result.id):
                log.debug("result for command %s of another instance ignored", result.id)
                return
            log.info("result for command %s not in memory (sent before a restart?)",
                     result.id)
            self._on_unknown(result, line, machine)
            return
        self.record_late(record, result)

    def record_late(self, record: CommandRecord, result: CommandResult) -> None:
        """Record `result` as late on `record`, unless the command already finished
        (a redelivered or repeated result)."""
        if record.outcome not in (Outcome.TIMEOUT, Outcome.PENDING):
            log.debug("result for finished command %s ignored", result.id)
            return
        log.info("late result for command %s: %s", result.id, result.status)
        self._finish(_apply_result(record, result, late=True))

    def _finish(self, record: CommandRecord) -> None:
        self._store.put(record)
        self._listener(record)


def _apply_result(record: CommandRecord, result: CommandResult, late: bool) -> CommandRecord:
    return replace(record, outcome=Outcome(result.status.value), detail=result.detail,
                   readback=result.readback, completed_at=result.ts, late=late)
