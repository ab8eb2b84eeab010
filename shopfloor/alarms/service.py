"""`shopfloor alarms`: the rule engine's thin shell. One broker connection (its own network
thread, `shared/mqtt.py`) hands messages to a queue; one loop thread feeds them to the
engine, ticks it every `TICK_S`, publishes each changed instance retained (QoS 1) and
stores each transition in InfluxDB (measurement `alarm`).

Restart: the alarm topics are subscribed first; what arrives before the broker
acknowledges the second subscription (state and status) is the retained alarm state,
which restores the engine before it sees any machine state (engine.py says why that
neither repeats nor loses a transition).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from shopfloor.alarms.actions import Actions
from shopfloor.alarms.engine import Engine, Instance, Record, payload_of
from shopfloor.alarms.notify.notifier import open_notifier
from shopfloor.shared import schema, topics
from shopfloor.shared.access import client_id_of
from shopfloor.shared.alarm_rules import RuleKind
from shopfloor.shared.backoff import Backoff
from shopfloor.shared.contract import (
    AgentStatus,
    AlarmCommand,
    AlarmPayload,
    StatePayload,
    parse,
)
from shopfloor.shared.errors import ContractError
from shopfloor.shared.influx import DatabaseUnavailable, LinesRejected, LineWriter, open_writer
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.mqtt import BrokerThread, Session
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)

TICK_S = 1.0
MAX_PENDING_LINES = 100_000
_LIVE = object()  # queue marker: restore is over, live messages follow


class AlarmService:
    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.engine = Engine(plant, time.time())
        self.actions = Actions(self.engine)
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._live = False
        self._restore_mid: int | None = None
        self._live_mid: int | None = None
        self._pending: list[str] = []
        self._writer: LineWriter | None = None
        self._db_backoff = Backoff(max_s=30.0)
        self._db_retry_at = 0.0
        self._db_failures = FailureLog(log, f"InfluxDB {plant.database.url}")
        self._link = self._make_link()
        self._client = self._link.client
        self.notifier = open_notifier(plant, self._instance_of)

    def _make_link(self) -> BrokerThread:
        client_id = client_id_of(self.plant.broker, f"shopfloor-alarms-{self.plant.site.id}")
        link = BrokerThread(self.plant.broker, Session(client_id), name="alarms-mqtt",
                            on_connected=self._on_connect)
        link.client.on_subscribe = self._on_subscribe
        link.client.on_message = self._on_message
        return link

    def run(self, stop: threading.Event) -> None:
        self._link.start()
        self.notifier.start()
        try:
            while not stop.is_set():
                deadline = time.monotonic() + TICK_S
                while (left := deadline - time.monotonic()) > 0 and not stop.is_set():
                    try:
                        self._handle(self._inbox.get(timeout=left))
                    except queue.Empty:
                        break
                if self._live:
                    self._emit(self.engine.tick(time.time()))
                    self.notifier.tick(time.time())
                self._flush()
        finally:
            self._link.stop()
            self.notifier.stop()
            self._flush()
            if self._writer is not None:
                self._writer.close()

    # paho's thread: only hand over

    def _on_connect(self, client: mqtt.Client, _session_present: bool) -> None:
        site = self.plant.site.id
        if self._live_mid is None:  # first connection: restore first
            _, self._restore_mid = client.subscribe(topics.all_alarms(site), qos=1)
        else:
            self._subscribe_live(client)

    def _subscribe_live(self, client: mqtt.Client) -> None:
        site = self.plant.site.id
        _, self._live_mid = client.subscribe([
            (topics.all_of_kind(site, topics.STATE), SubscribeOptions(qos=1)),
            (topics.status_topic(site, "+"), SubscribeOptions(qos=1)),
            (topics.alarm_cmd_topic(site), SubscribeOptions(qos=1)),
        ])

    def _on_subscribe(self, client: mqtt.Client, _u: Any, mid: int, _r: Any,
                      _p: Any = None) -> None:
        if mid == self._restore_mid:
            self._subscribe_live(client)
        elif mid == self._live_mid and not self._live:
            self._inbox.put(_LIVE)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put((message.topic, bytes(message.payload), time.time()))

    # the loop thread

    def _handle(self, item: Any) -> None:
        if item is _LIVE:
            self._live = True
            log.info("alarm state restored from the broker; evaluating %d instance(s)",
                     len(self.engine.instances))
            return
        topic, raw, received_at = item
        try:
            self._emit(self._dispatch(topic, raw, received_at))
        except ContractError as exc:
            log.debug("ignored %s: %s", topic, exc)

    def _dispatch(self, topic: str, raw: bytes, received_at: float) -> list[Record]:
        parts = topic.split("/")
        if len(parts) == 7 and parts[5] == topics.ALARM:
            if not self._live and raw:
                payload = parse(AlarmPayload, raw)
                self.engine.restore(payload)
                self.actions.remember(payload)
            return []
        if not self._live or not raw:
            return []
        if topic == topics.alarm_cmd_topic(self.plant.site.id):
            return self._act(parse(AlarmCommand, raw))
        if parts[-1] == topics.STATUS and parts[3] == "edge":
            return self.engine.on_status(parse(AgentStatus, raw), received_at)
        if parts[-1] == topics.STATE and len(parts) == 6:
            return self.engine.on_state(parts[4], parse(StatePayload, raw))
        return []

    def _act(self, command: AlarmCommand) -> list[Record]:
        """A person's action: its transition is published (retained) before the answer,
        so an API that got `done` finds the alarm's new state on the broker."""
        result, record = self.actions.handle(command, time.time())
        records = [] if record is None else [record]
        self._emit(records)
        self._client.publish(topics.alarm_result_topic(self.plant.site.id), result.to_json(),
                             qos=1)
        log.info("alarm action %s %s/%s by %s: %s %s", command.action, command.machine,
                 command.rule, command.requested_by, result.status, result.detail)
        return []

    def _emit(self, records: list[Record]) -> None:
        now = time.time()
        self.notifier.notify(records, now)  # queued durably before it is published
        for record in records:
            instance, transition = record.instance, record.transition
            payload = payload_of(self.plant.site.id, instance, transition, now)
            self._client.publish(topics.alarm_topic(self.plant.site.id, instance.line,
                                                    instance.machine, instance.rule.kind),
                                 payload.to_json(), qos=1, retain=True)
            line = transition_line(self.plant.site.id, record)
            if line is not None and len(self._pending) < MAX_PENDING_LINES:
                self._pending.append(line)
            log.info("alarm %s/%s: %s -> %s (%s)", instance.machine, instance.rule.kind,
                     transition.from_state, transition.to_state, transition.kind)

    def _instance_of(self, machine: str, rule: str) -> Instance | None:
        """The engine's instance (and so its lifecycle state) for the notifier."""
        try:
            return self.engine.instances.get((machine, RuleKind(rule)))
        except ValueError:  # a rule kind this version does not know
            return None

    def _flush(self) -> None:
        if not self._pending or time.monotonic() < self._db_retry_at:
            return
        try:
            if self._writer is None:
                self._writer = open_writer(self.plant.database)
            self._writer.write(self._pending)
        except LinesRejected as exc:
            log.error("InfluxDB refused %d alarm line(s): %s", len(self._pending), exc)
        except DatabaseUnavailable as exc:
            self._db_failures.failure("%s", exc)
            self._db_retry_at = time.monotonic() + self._db_backoff.next_delay()
            return
        self._pending = []
        self._db_backoff.reset()
        self._db_failures.success()


def transition_line(site: str, record: Record) -> str | None:
    """The `alarm` point of one transition (docs/influxdb-schema.md), at its event time."""
    instance, transition = record.instance, record.transition
    return schema.line(schema.ALARM, {
        schema.TAG_SITE: site, schema.TAG_LINE: instance.line,
        schema.TAG_MACHINE: instance.machine, schema.TAG_RULE: instance.rule.kind,
        schema.TAG_SEVERITY: instance.rule.severity,
    }, {"kind": str(transition.kind), "from_state": str(transition.from_state),
        "to_state": str(transition.to_state), "by": transition.by,
        "comment": transition.comment, "command_id": transition.command_id or ""},
        round(transition.at * 1000))
