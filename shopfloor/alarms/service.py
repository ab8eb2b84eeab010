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

from shopfloor.alarms import inputs
from shopfloor.alarms.actions import Actions
from shopfloor.alarms.engine import Engine, Instance, Record, payload_of
from shopfloor.alarms.inputs import LineKpi, MachineKpi
from shopfloor.alarms.notify.notifier import open_notifier
from shopfloor.alarms.status import AlarmStatus
from shopfloor.kpi.calendar import ShiftCalendar
from shopfloor.shared import schema, topics
from shopfloor.shared.access import client_id_of
from shopfloor.shared.alarm_rules import RuleKind, site_rules
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
READ_PERIOD_S = 5.0
"""How often the downtime events and collector stats are read from InfluxDB (and the
ongoing stops judged: the API's own downtime sync runs every 5 s too)."""
STATS_OVERLAP_MS = 60_000
"""Stats points are read again this far back: collectors write them independently, so
one may land after another's newer point was read; each collector's own last point read
decides what is new."""
MAX_PENDING_LINES = 100_000
_LIVE = object()  # queue marker: restore is over, live messages follow


class AlarmService:
    def __init__(self, plant: Plant) -> None:
        self.plant = plant
        self.engine = Engine(plant, time.time())
        self.actions = Actions(self.engine)
        self._shift_name = ShiftCalendar.of(plant).shift_name
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._live = False
        self._restore_mid: int | None = None
        self._live_mid: int | None = None
        self.pending: list[str] = []
        """Transition lines not yet in InfluxDB (at most MAX_PENDING_LINES)."""
        self.dropped_lines = 0
        self.last_tick = time.monotonic()
        self._writer: LineWriter | None = None
        self._db_backoff = Backoff(max_s=30.0)
        self._db_retry_at = 0.0
        self._db_failures = FailureLog(log, f"InfluxDB {plant.database.url}")
        self._read_failures = FailureLog(log, f"InfluxDB {plant.database.url} (reading)")
        self._read_at = 0.0
        # at start, the last minute of stats is read again: its first point is each
        # collector's baseline for dead letters, and replaying it against the restored
        # alarms changes nothing that was already decided
        self._stats_after_ms = int(time.time() * 1000) - STATS_OVERLAP_MS
        self._stats_seen: dict[str, int] = {}  # collector -> time of its last point read
        self._reads_stats = plant.collector.stats_period_s is not None and \
            bool(site_rules(plant.alarms))
        self._lookback_s = max((i.rule.lookback_s for i in self.engine.instances.values()
                                if i.rule.kind is RuleKind.DOWNTIME_UNCLASSIFIED),
                               default=None)
        self._link = self._make_link()
        self._client = self._link.client
        self.notifier = open_notifier(plant, self._instance_of)
        self.status = AlarmStatus(self)

    @property
    def broker_connected(self) -> bool:
        return self._link.connected.is_set()

    @property
    def live(self) -> bool:
        """The alarm state is restored from the broker: rules are being evaluated."""
        return self._live

    @property
    def database_failing(self) -> bool:
        """The last write of transitions, or the last read of the rules' inputs, failed."""
        return self._db_failures.failing or self._read_failures.failing

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
        self.status.start(self.plant.alarms.metrics_port)
        try:
            while not stop.is_set():
                self.last_tick = time.monotonic()
                deadline = time.monotonic() + TICK_S
                while (left := deadline - time.monotonic()) > 0 and not stop.is_set():
                    try:
                        self._handle(self._inbox.get(timeout=left))
                    except queue.Empty:
                        break
                if self._live:
                    self._emit(self.engine.tick(time.time()))
                    self._read_database()
                    self.notifier.tick(time.time())
                self._flush()
        finally:
            self.status.stop()
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
            (topics.all_of_kind(site, topics.KPI), SubscribeOptions(qos=0)),
            (topics.line_kpi_topic(site, "+"), SubscribeOptions(qos=0)),
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
        if parts[-1] == topics.KPI and len(parts) == 6:
            return self.engine.on_kpi(parts[4], parse(MachineKpi, raw))
        if parts[-1] == topics.KPI and len(parts) == 5:
            return self.engine.on_line_kpi(parse(LineKpi, raw))
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
            line = transition_line(self.plant.site.id, record,
                                   self._shift_name(round(transition.at * 1000)))
            if line is not None and len(self.pending) < MAX_PENDING_LINES:
                self.pending.append(line)
            elif line is not None:  # the database has been down that long: counted
                self.dropped_lines += 1
            log.info("alarm %s/%s: %s -> %s (%s)", instance.machine, instance.rule.kind,
                     transition.from_state, transition.to_state, transition.kind)

    def _read_database(self) -> None:
        """Every READ_PERIOD_S: the unclassified downtime parts and the new collector
        stats points, fed to the engine. A database that does not answer is retried at
        the next period (logged once, recovery at INFO); nothing is lost meanwhile: the
        stats cursor only moves past points that were read."""
        now = time.time()
        if now < self._read_at or (self._lookback_s is None and not self._reads_stats):
            return
        self._read_at = now + READ_PERIOD_S
        site = self.plant.site.id
        try:
            db = self._database()
            if self._lookback_s is not None:
                since_ms = int((now - self._lookback_s) * 1000)
                stored = inputs.stored_downtime(db.query(
                    inputs.downtime_query(site, since_ms)))
                self._emit(self.engine.on_downtime(stored, now))
            if self._reads_stats:
                self._read_stats(db)
        except DatabaseUnavailable as exc:
            self._read_failures.failure("%s", exc)
            return
        self._read_failures.success()

    def _read_stats(self, db: LineWriter) -> None:
        seen = self._stats_seen.values()
        after_ms = max(seen) - STATS_OVERLAP_MS if seen else self._stats_after_ms
        by_collector = inputs.stats_points(db.query(
            inputs.stats_query(self.plant.site.id, after_ms)))
        for collector, points in by_collector.items():
            for point in points:
                at_ms = round(point.at * 1000)
                if at_ms <= self._stats_seen.get(collector, self._stats_after_ms):
                    continue
                self._stats_seen[collector] = at_ms
                self._emit(self.engine.on_stats(collector, point))

    def _database(self) -> LineWriter:
        if self._writer is None:
            self._writer = open_writer(self.plant.database)
        return self._writer

    def _instance_of(self, machine: str, rule: str) -> Instance | None:
        """The engine's instance (and so its lifecycle state) for the notifier."""
        try:
            return self.engine.instances.get((machine, RuleKind(rule)))
        except ValueError:  # a rule kind this version does not know
            return None

    def _flush(self) -> None:
        if not self.pending or time.monotonic() < self._db_retry_at:
            return
        try:
            self._database().write(self.pending)
        except LinesRejected as exc:
            log.error("InfluxDB refused %d alarm line(s): %s", len(self.pending), exc)
        except DatabaseUnavailable as exc:
            self._db_failures.failure("%s", exc)
            self._db_retry_at = time.monotonic() + self._db_backoff.next_delay()
            return
        self.pending = []
        self._db_backoff.reset()
        self._db_failures.success()


def transition_line(site: str, record: Record, shift: str = "") -> str | None:
    """The `alarm` point of one transition (docs/influxdb-schema.md), at its event time;
    `shift`: the name of the shift it falls in (none outside shifts)."""
    instance, transition = record.instance, record.transition
    return schema.line(schema.ALARM, {
        schema.TAG_SITE: site, schema.TAG_LINE: instance.line,
        schema.TAG_MACHINE: instance.machine, schema.TAG_RULE: instance.rule.kind,
        schema.TAG_SEVERITY: instance.rule.severity, schema.TAG_SHIFT: shift,
    }, {"kind": str(transition.kind), "from_state": str(transition.from_state),
        "to_state": str(transition.to_state), "by": transition.by,
        "comment": transition.comment, "command_id": transition.command_id or ""},
        round(transition.at * 1000))
