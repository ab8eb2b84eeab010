"""Everything a running API holds: the plant, settings, live view, command bus, clients.
Opened in the app's lifespan (`open_runtime`), closed on shutdown (`close_runtime`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from shopfloor.api import audit as audit_log
from shopfloor.api import queries
from shopfloor.api.alarm_bus import AUDIT_ACTIONS, AlarmBus, AlarmOutcome
from shopfloor.api.audit import AuditLog, recall
from shopfloor.api.commands import (
    CommandBus,
    CommandRecord,
    Drop,
    Dropped,
    Listener,
    Outcome,
    RecordStore,
    Unknown,
)
from shopfloor.api.config import ApiSettings, mqtt_client_id_of, state_dir_of
from shopfloor.api.downtime.service import DowntimeService
from shopfloor.api.errors import Unavailable
from shopfloor.api.guard import WorkLimiter
from shopfloor.api.idempotency import AnswerFile, IdempotencyStore
from shopfloor.api.inbox import ResultInbox
from shopfloor.api.influx import InfluxClient
from shopfloor.api.kpi import KpiService
from shopfloor.api.live import LiveView
from shopfloor.api.metrics import ApiMetrics
from shopfloor.api.mqtt import ApiMqttLink
from shopfloor.api.operator.andon import AndonHub
from shopfloor.shared import schema, topics
from shopfloor.shared.access import client_id_of
from shopfloor.shared.contract import AlarmCommandResult, CommandResult, parse, utc_now
from shopfloor.shared.errors import ContractError
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)

RECALL_TIMEOUT_S = 10.0
MAX_LOOKUPS = 16
"""Audit lookups of result ids not in memory running at once."""


@dataclass
class Runtime:
    plant: Plant
    settings: ApiSettings
    metrics: ApiMetrics
    live: LiveView
    records: RecordStore
    idempotency: IdempotencyStore
    influx: InfluxClient
    audit: AuditLog
    bus: CommandBus
    mqtt: ApiMqttLink
    kpi: KpiService
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    downtime: DowntimeService | None = None  # downtime events (api/downtime/)
    andon: AndonHub | None = None  # live changes for the operator page (api/operator/)
    alarms: AlarmBus | None = None  # people's actions on alarms (api/alarm_bus.py)


def _listener(runtime_box: dict[str, Runtime]) -> Listener:
    def on_record(record: CommandRecord) -> None:
        runtime = runtime_box["rt"]
        runtime.audit.add(audit_log.from_record(
            runtime.plant.site.id, record,
            audit_log.SENT if record.outcome is Outcome.PENDING else None))
        if record.outcome is Outcome.PENDING:
            return
        runtime.metrics.commands.labels(record.action, record.outcome.value).inc()
        if record.outcome is Outcome.DONE and record.readback is not None:
            runtime.live.note_write(record.machine, record.point, record.readback)

    return on_record


def _alarm_listener(runtime_box: dict[str, Runtime]) -> Callable[[AlarmOutcome], None]:
    """Audit every alarm action when sent and when its outcome is known."""

    def on_outcome(outcome: AlarmOutcome) -> None:
        runtime, request = runtime_box["rt"], outcome.request
        action = AUDIT_ACTIONS[request.action]
        runtime.audit.add(audit_log.AuditEntry(
            site=runtime.plant.site.id, line=request.line, machine=request.machine,
            action=action, requested_by=request.requested_by, command_id=outcome.id,
            outcome=(audit_log.SENT if outcome.outcome is Outcome.PENDING
                     else outcome.outcome.value),
            point=request.rule, value=request.shelve_s,
            detail=outcome.detail or request.comment, late=outcome.late))
        if outcome.outcome is not Outcome.PENDING:
            runtime.metrics.commands.labels(action, outcome.outcome.value).inc()

    return on_outcome


def open_runtime(plant: Plant, settings: ApiSettings, metrics: ApiMetrics) -> Runtime:
    """Build and start everything (inside the running event loop)."""
    loop = asyncio.get_running_loop()
    idempotency = _idempotency(settings)  # first: an unusable state folder stops the start
    box: dict[str, Runtime] = {}
    live = LiveView(plant)
    records = RecordStore(settings.max_command_records)
    reads = WorkLimiter(settings.max_concurrent_reads, settings.query_timeout_s)
    influx = InfluxClient(plant.database, reads)
    audit = AuditLog(influx)

    def dropped(reason: str) -> None:
        metrics.results_dropped.labels(reason).inc()

    inbox: ResultInbox[CommandResult] = ResultInbox(
        loop, lambda *item: box["rt"].bus.deliver(*item), dropped,
        lambda command_id: box["rt"].bus.is_pending(command_id))

    alarm_inbox: ResultInbox[AlarmCommandResult] = ResultInbox(
        loop, lambda *item: _alarms_of(box["rt"]).deliver(*item), dropped,
        lambda command_id: _alarms_of(box["rt"]).is_pending(command_id))
    alarm_results = topics.alarm_result_topic(plant.site.id)

    def on_message(topic: str, payload: bytes) -> None:
        if topic == alarm_results:
            try:
                alarm_inbox.put(parse(AlarmCommandResult, payload), "", "")
            except ContractError as exc:
                log.debug("bad alarm action result: %s", exc)
                dropped(Dropped.MALFORMED)
            return
        if topic.endswith("/" + topics.CMD_RESULT):
            where = topics.parse_machine_topic(topic)
            spec = plant.machines.get(where.machine) if where else None
            try:
                if where is None or spec is None or spec.line != where.line:
                    raise ContractError(f"{topic} is no machine topic of the plant")
                result = parse(CommandResult, payload)
            except ContractError as exc:
                log.debug("bad command result on %s: %s", topic, exc)
                dropped(Dropped.MALFORMED)
                return
            inbox.put(result, where.line, where.machine)
            return
        live.apply(topic, payload)

    client_id = client_id_of(plant.broker, mqtt_client_id_of(settings, plant.site.id))
    mqtt = ApiMqttLink(plant.broker, plant.site.id, on_message, client_id=client_id,
                    session_expiry_s=settings.mqtt_session_expiry_s)
    bus = CommandBus(plant.site.id, mqtt.publish, records, _listener(box),
                     instance=client_id, on_unknown=_recover_later(box, dropped),
                     on_drop=dropped)
    runtime = Runtime(plant, settings, metrics, live, records, idempotency, influx,
                      audit, bus, mqtt, KpiService(plant, reads))
    box["rt"] = runtime
    runtime.alarms = AlarmBus(plant.site.id, mqtt.publish, _alarm_listener(box))
    audit.start()
    runtime.downtime = DowntimeService(plant, influx, live, audit)
    runtime.andon = AndonHub(live, loop)
    runtime.downtime.start(lambda: schema.to_ms(utc_now()))
    return runtime


def _alarms_of(runtime: Runtime) -> AlarmBus:
    assert runtime.alarms is not None  # set in open_runtime
    return runtime.alarms


def _recover_later(box: dict[str, Runtime], dropped: Drop) -> Unknown:
    """Results of ours not in memory (sent before a restart): look the command up in the
    audit in a task (the bus runs on the loop and must not wait), one lookup per id and
    at most MAX_LOOKUPS at once (a flood of made-up ids must not flood the database);
    the others are dropped and counted."""
    looking: set[str] = set()

    def on_unknown(result: CommandResult, line: str, machine: str) -> None:
        if result.id in looking:  # the same result again while its lookup runs
            return
        if len(looking) >= MAX_LOOKUPS:
            dropped(Dropped.LOOKUP_BUSY)
            return
        runtime = box["rt"]
        looking.add(result.id)
        task = asyncio.create_task(_recover(runtime, result, line, machine),
                                   name=f"recover-{result.id}")
        runtime.tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            runtime.tasks.discard(finished)
            looking.discard(result.id)
            if not finished.cancelled() and finished.exception() is not None:
                log.error("recording the result of command %s failed: %r", result.id,
                          finished.exception())

        task.add_done_callback(done)

    return on_unknown


async def _recover(runtime: Runtime, result: CommandResult, line: str, machine: str) -> None:
    """Record a result for a command not in memory as late, on the command rebuilt from
    its audit entries, when it came on that command's machine topic. A result that
    matches no command the audit knows (or that cannot be matched: audit unreadable) is
    dropped and counted; a command the audit shows finished is left alone."""
    try:
        record = await _recall(runtime, result.id)
    except (Unavailable, TimeoutError) as exc:
        log.warning("command %s: audit not readable (%s); its result is dropped",
                    result.id, exc or "timeout")
        runtime.metrics.results_dropped.labels(Dropped.UNVERIFIABLE).inc()
        return
    record = runtime.records.get(result.id) or record
    if record is None:
        runtime.metrics.results_dropped.labels(Dropped.NOT_PENDING).inc()
        log.debug("result for %s, a command never sent, dropped", result.id)
        return
    runtime.bus.record_late(record, result, line, machine)


async def _recall(runtime: Runtime, command_id: str) -> CommandRecord | None:
    query = queries.audit(runtime.plant.site.id, queries.AuditFilter(command_id=command_id),
                          None, 20, 0)
    async with asyncio.timeout(RECALL_TIMEOUT_S):
        return recall(await runtime.influx.rows(query))


def _idempotency(settings: ApiSettings) -> IdempotencyStore:
    """Keys in memory, finished answers in the state folder (ConfigError if unusable)."""
    ttl_s = settings.idempotency_ttl_s
    return IdempotencyStore(ttl_s, settings.idempotency_keys_per_api_key,
                            answers=AnswerFile.open(state_dir_of(settings), ttl_s))


async def start_link(runtime: Runtime) -> None:
    """Connect to the broker without blocking the loop (waits up to a few seconds)."""
    await asyncio.to_thread(runtime.mqtt.start)


async def close_runtime(runtime: Runtime) -> None:
    await asyncio.to_thread(runtime.mqtt.stop)
    if runtime.tasks:  # late results being recorded: let them reach the audit queue
        await asyncio.wait(runtime.tasks, timeout=RECALL_TIMEOUT_S)
    if runtime.downtime is not None:
        await runtime.downtime.stop()
    await runtime.audit.stop()
    await runtime.influx.aclose()
    await asyncio.to_thread(runtime.kpi.close)
    runtime.influx.reads.close()
    runtime.idempotency.close()
