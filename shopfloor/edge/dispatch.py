"""Receives commands from the machines' `.../cmd` topics and answers each on
`.../cmd/result` (through the outbox, so results survive a broker outage). What cannot
be parsed and has no readable id goes to the dead-letter topic; nothing here stops the
agent."""

from __future__ import annotations

import asyncio
import logging
import time

from shopfloor.edge.commands import (
    check_command,
    check_interlock,
    execute,
    extract_id,
    result_payload,
)
from shopfloor.edge.drivers.base import Driver
from shopfloor.edge.errors import OutboxError
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.store import Message
from shopfloor.shared import topics
from shopfloor.shared.contract import Command, CommandStatus, DeadLetter, parse, utc_now
from shopfloor.shared.errors import ContractError
from shopfloor.shared.plant import Machine

log = logging.getLogger(__name__)

MAX_PENDING = 1000


class CommandDispatcher:
    def __init__(
        self,
        site: str,
        machines: dict[str, tuple[Machine, Driver]],
        outbox: Outbox,
        metrics: EdgeMetrics,
    ) -> None:
        self.site = site
        self.machines = machines
        self.outbox = outbox
        self.metrics = metrics
        self.by_topic = {
            topics.machine_topic(site, m.line, mid, topics.CMD): mid
            for mid, (m, _) in machines.items()
        }
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(MAX_PENDING)
        # One write at a time per machine (interlock read, write, read-back): two
        # concurrent writes of one point each read back their own value.
        self._writing = {mid: asyncio.Lock() for mid in machines}

    @property
    def topics(self) -> list[str]:
        return sorted(self.by_topic)

    def on_message(self, topic: str, payload: bytes) -> None:
        """Called by the MQTT link on the loop thread."""
        try:
            self._queue.put_nowait((topic, payload))
        except asyncio.QueueFull:
            self._dead_letter(topic, payload, "edge command queue full")

    async def run(self) -> None:
        """Handle commands concurrently (a slow device delays only its own commands)."""
        async with asyncio.TaskGroup() as group:
            while True:
                topic, payload = await self._queue.get()
                group.create_task(self._handle_safely(topic, payload), name=f"cmd:{topic}")

    async def _handle_safely(self, topic: str, payload: bytes) -> None:
        try:
            await self.handle(topic, payload)
        except Exception:  # noqa: BLE001 - one bad command must not stop the others
            log.exception("command on %s failed unexpectedly", topic)
            self.metrics.commands.labels("error").inc()

    async def handle(self, topic: str, payload: bytes) -> None:
        machine_id = self.by_topic.get(topic)
        if machine_id is None:
            self._dead_letter(topic, payload, "not a command topic of this agent")
            return
        machine, driver = self.machines[machine_id]
        try:
            command: Command = parse(Command, payload)
        except ContractError as exc:
            self._malformed(topic, payload, machine_id, str(exc))
            return
        status, detail, readback = await self._decide(machine_id, machine, driver, command)
        self._answer(machine, machine_id, command.id, status, detail, readback)

    async def _decide(self, machine_id: str, machine: Machine, driver: Driver, command: Command):  # type: ignore[no-untyped-def]
        refusal = check_command(machine, command, utc_now())
        if refusal is not None:
            return refusal[0], refusal[1], None
        async with self._writing[machine_id]:
            return await self._write(machine_id, machine, driver, command)

    async def _write(self, machine_id: str, machine: Machine, driver: Driver, command: Command):  # type: ignore[no-untyped-def]
        refusal = await check_interlock(machine_id, machine, driver, command)
        if refusal is not None:
            return refusal[0], refusal[1], None
        if command.expires_at <= utc_now():  # waited for the machine's previous writes
            return CommandStatus.EXPIRED, f"expired at {command.expires_at.isoformat()}", None
        try:
            claimed = self.outbox.claim_command(command.id, machine_id, time.time())
        except OutboxError as exc:  # not recorded: executing it could execute it twice
            return CommandStatus.FAILED, f"not executed: {exc}", None
        if not claimed:
            return CommandStatus.REJECTED, f"duplicate id {command.id!r}: already executed", None
        log.info(
            "command %s: %s.%s = %r (by %s)",
            command.id,
            machine_id,
            command.point,
            command.value,
            command.requested_by or "?",
        )
        return await execute(machine_id, machine, driver, command)

    def _malformed(self, topic: str, payload: bytes, machine_id: str, why: str) -> None:
        command_id = extract_id(payload)
        if command_id is None:
            self._dead_letter(topic, payload, why)
            return
        machine, _ = self.machines[machine_id]
        self._answer(
            machine, machine_id, command_id, CommandStatus.REJECTED, f"malformed: {why}", None
        )

    def _answer(
        self,
        machine: Machine,
        machine_id: str,
        command_id: str,
        status: CommandStatus,
        detail: str,
        readback: object,
    ) -> None:
        self.metrics.commands.labels(status.value).inc()
        level = logging.INFO if status is CommandStatus.DONE else logging.WARNING
        log.log(level, "command %s on %s: %s (%s)", command_id, machine_id, status.value, detail)
        topic = topics.machine_topic(self.site, machine.line, machine_id, topics.CMD_RESULT)
        payload = result_payload(command_id, status, detail, readback, utc_now())  # type: ignore[arg-type]
        self.outbox.put(Message(topic, payload), urgent=True)

    def _dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        log.warning("dead letter from %s: %s", topic, reason)
        self.metrics.dead_letters.inc()
        self.metrics.commands.labels("dead_letter").inc()
        letter = DeadLetter(
            topic=topic,
            reason=reason,
            payload=payload.decode("utf-8", "replace")[:4096],
            ts=utc_now(),
        )
        self.outbox.put(Message(topics.dead_letter_topic(self.site, "edge"), letter.to_json()))
