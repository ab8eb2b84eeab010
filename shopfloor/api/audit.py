"""The control audit: every command (when sent and when its result is known, including
late results), every action the API refused, and every WIP stocktake, written to the
InfluxDB measurement `control_audit` (docs/api.md, "Audit").

Tags: site, line, machine, action, outcome, requested_by (the key's name — bounded).
Fields: command_id, point, value and readback (JSON text, so that one field keeps one
type), detail, late. Time: nanoseconds, made unique per process so that two entries in
the same millisecond never overwrite each other.

Writes go through a queue drained by one background task that retries with capped
backoff while the database is down (bounded; the oldest entries go first when full)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from shopfloor.api.commands import CommandRecord, Outcome
from shopfloor.api.errors import Unavailable
from shopfloor.api.influx import InfluxClient
from shopfloor.shared import schema
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.contract import PointValue
from shopfloor.shared.logs import FailureLog

log = logging.getLogger(__name__)

SENT = "sent"  # outcome of the entry written when a command is published
REFUSED = "refused"  # outcome of an action the API refused before sending anything
MAX_PENDING = 100_000
BATCH = 1000
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 10.0  # while the database is down


@dataclass(frozen=True, slots=True)
class AuditEntry:
    site: str
    line: str
    machine: str
    action: str
    outcome: str
    requested_by: str
    command_id: str = ""
    point: str = ""
    value: PointValue | None = None
    readback: PointValue | None = None
    detail: str = ""
    late: bool = False
    expires_at: str = ""  # ISO 8601, commands only


def from_record(site: str, record: CommandRecord, outcome: str | None = None) -> AuditEntry:
    return AuditEntry(
        site=site, line=record.line, machine=record.machine, action=record.action,
        outcome=outcome or record.outcome.value, requested_by=record.requested_by,
        command_id=record.id, point=record.point, value=record.value,
        readback=record.readback, detail=record.detail, late=record.late,
        expires_at=record.expires_at.isoformat(),
    )


def to_line(entry: AuditEntry, ts_ns: int) -> str:
    tags = {
        schema.TAG_SITE: entry.site, schema.TAG_LINE: entry.line,
        schema.TAG_MACHINE: entry.machine, "action": entry.action,
        "outcome": entry.outcome, "requested_by": entry.requested_by,
    }
    fields: dict[str, object] = {
        "command_id": entry.command_id, "point": entry.point,
        "value": json.dumps(entry.value), "readback": json.dumps(entry.readback),
        "detail": entry.detail, "late": entry.late,
    }
    if entry.expires_at:
        fields["expires_at"] = entry.expires_at
    # schema.line formats the integer timestamp as given; the write says precision=ns.
    text = schema.line(schema.CONTROL_AUDIT, tags, fields, ts_ns)
    assert text is not None  # always has string fields
    return text


def recall(rows: list[dict[str, Any]]) -> CommandRecord | None:
    """A command rebuilt from its audit entries (rows of one command_id, epoch-ms times),
    for commands no longer held in memory; None without its `sent` entry."""
    ordered = sorted(rows, key=lambda r: r["time"])
    sent = next((r for r in ordered if r.get("outcome") == SENT), None)
    if sent is None:
        return None
    record = CommandRecord(
        id=str(sent.get("command_id")), machine=sent.get("machine") or "",
        line=sent.get("line") or "", action=sent.get("action") or "",
        point=sent.get("point") or "", value=decode_json(sent.get("value")),
        requested_by=sent.get("requested_by") or "", requested_at=_time(sent["time"]),
        expires_at=dt.datetime.fromisoformat(sent.get("expires_at") or "1970-01-01T00:00:00Z"),
    )
    final = [r for r in ordered if r.get("outcome") in {o.value for o in Outcome}]
    if not final:
        return record
    return _with_result(record, final[-1])


def _with_result(record: CommandRecord, row: dict[str, Any]) -> CommandRecord:
    return replace(record, outcome=Outcome(row["outcome"]), detail=row.get("detail") or "",
                   readback=decode_json(row.get("readback")), completed_at=_time(row["time"]),
                   late=bool(row.get("late")))


def decode_json(text: Any) -> Any:
    """A JSON text field back to its value (the text itself when it is not JSON)."""
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


class AuditLog:
    """Queue entries; a background task writes them (see module docstring)."""

    def __init__(self, influx: InfluxClient) -> None:
        self._influx = influx
        self._pending: deque[str] = deque()
        self._wake = asyncio.Event()
        self._last_ns = 0
        self._failures = FailureLog(log, "audit log write")
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def add(self, entry: AuditEntry) -> None:
        now = max(time.time_ns(), self._last_ns + 1)
        self._last_ns = now
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
            log.error("audit queue full (%d): oldest entry dropped", MAX_PENDING)
        self._pending.append(to_line(entry, now))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Flush what is queued (bounded wait), then stop the writer."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(flush_timeout_s):
                while self._pending and not self._failures.failing:
                    await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pending:
            log.error("audit log: %d entries not written at shutdown", len(self._pending))

    async def _run(self) -> None:
        backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            batch = [self._pending[i] for i in range(min(BATCH, len(self._pending)))]
            dropped_before = self.dropped
            try:
                await self._influx.write(batch, precision="ns")
            except Unavailable as exc:
                self._failures.failure("%s (%d entries kept)", exc, len(self._pending))
                await asyncio.sleep(backoff.next_delay())
                continue
            # entries dropped while writing were taken from the front of this batch
            for _ in range(max(0, len(batch) - (self.dropped - dropped_before))):
                self._pending.popleft()
            self._failures.success()
            backoff.reset()
