"""Everything a running API holds: the plant, settings, live view, command bus, clients.
Opened in the app's lifespan (`open_runtime`), closed on shutdown (`close_runtime`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from shopfloor.api import audit as audit_log
from shopfloor.api.audit import AuditLog
from shopfloor.api.commands import CommandBus, CommandRecord, Listener, Outcome, RecordStore
from shopfloor.api.config import Settings, state_dir_of
from shopfloor.api.idempotency import AnswerFile, IdempotencyStore
from shopfloor.api.influx import InfluxClient
from shopfloor.api.kpi import KpiService
from shopfloor.api.live import LiveView
from shopfloor.api.metrics import ApiMetrics
from shopfloor.api.mqtt import MqttLink
from shopfloor.shared import topics
from shopfloor.shared.contract import CommandResult, parse
from shopfloor.shared.errors import ContractError
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    plant: Plant
    settings: Settings
    metrics: ApiMetrics
    live: LiveView
    records: RecordStore
    idempotency: IdempotencyStore
    influx: InfluxClient
    audit: AuditLog
    bus: CommandBus
    mqtt: MqttLink
    kpi: KpiService


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


def open_runtime(plant: Plant, settings: Settings, metrics: ApiMetrics) -> Runtime:
    """Build and start everything (inside the running event loop)."""
    loop = asyncio.get_running_loop()
    idempotency = _idempotency(settings)  # first: an unusable state folder stops the start
    box: dict[str, Runtime] = {}
    live = LiveView(plant)
    records = RecordStore(settings.max_command_records)
    influx = InfluxClient(plant.database)
    audit = AuditLog(influx)

    def on_message(topic: str, payload: bytes) -> None:
        if topic.endswith("/" + topics.CMD_RESULT):
            try:
                result = parse(CommandResult, payload)
            except ContractError as exc:
                log.debug("bad command result on %s: %s", topic, exc)
                return
            loop.call_soon_threadsafe(box["rt"].bus.deliver, result)
            return
        live.apply(topic, payload)

    mqtt = MqttLink(plant.broker, plant.site.id, on_message)
    bus = CommandBus(plant.site.id, mqtt.publish, records, _listener(box))
    runtime = Runtime(plant, settings, metrics, live, records, idempotency, influx,
                      audit, bus, mqtt, KpiService(plant))
    box["rt"] = runtime
    audit.start()
    return runtime


def _idempotency(settings: Settings) -> IdempotencyStore:
    """Keys in memory, finished answers in the state folder (ConfigError if unusable)."""
    ttl_s = settings.idempotency_ttl_s
    return IdempotencyStore(ttl_s, answers=AnswerFile.open(state_dir_of(settings), ttl_s))


async def start_link(runtime: Runtime) -> None:
    """Connect to the broker without blocking the loop (waits up to a few seconds)."""
    await asyncio.to_thread(runtime.mqtt.start)


async def close_runtime(runtime: Runtime) -> None:
    await asyncio.to_thread(runtime.mqtt.stop)
    await runtime.audit.stop()
    await runtime.influx.aclose()
    await asyncio.to_thread(runtime.kpi.close)
    runtime.idempotency.close()
