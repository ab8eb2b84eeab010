"""The collector's MQTT side: one paho-mqtt 2 client with an MQTT v5 persistent session
(fixed client id, clean start off, session expiry), QoS 1 subscriptions and manual
acknowledgement. Received messages go to an inbox queue; `ack` is called by the writer
thread once their batch is stored.

Threading (checked in paho 2.2's source): `Client.ack()` -> `_send_puback()` appends
the PUBACK to the client's outgoing deque and wakes the network thread (`loop_start`)
through its socket pair, so it is safe from another thread. Packet ids are only
meaningful on the connection that delivered them: each connection gets a generation
number, and acks of an earlier connection are dropped (the broker redelivers those
messages; the rewrite is idempotent and counted as a duplicate)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from paho.mqtt.client import CallbackAPIVersion, Client, MQTTMessage
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from shopfloor.shared import topics
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)
RECEIVE_MAXIMUM = 65535  # MQTT v5 cap; without it mosquitto sends only max_inflight (e.g. 100)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A received message; `received_at` is wall-clock time (s since the epoch)."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received_at: float


def subscriptions(plant: Plant) -> list[str]:
    """The plant file's topic filter (sharding), or the site's telemetry, state, status."""
    if plant.collector.topic_filter:
        return [f.strip() for f in plant.collector.topic_filter.split(",") if f.strip()]
    site = plant.site.id
    return [
        topics.all_of_kind(site, topics.TELEMETRY),
        topics.all_of_kind(site, topics.STATE),
        topics.status_topic(site, "+"),
    ]


class Subscriber:
    """Owns the paho client. `inbox` receives `Inbound` messages in arrival order."""

    def __init__(self, plant: Plant, inbox: queue.Queue[Inbound]) -> None:
        self._plant = plant
        self._inbox = inbox
        self._lock = threading.Lock()
        self._generation = 0
        self.connected = False
        self.subscribed = threading.Event()
        self.received = 0  # messages handed to the inbox (written by paho's thread only)
        self._failures = FailureLog(log, f"broker {plant.broker.host}:{plant.broker.port}")
        self.client = self._make_client()

    def _make_client(self) -> Client:
        broker = self._plant.broker
        client = Client(
            CallbackAPIVersion.VERSION2, client_id=self._plant.collector.client_id,
            protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True,
        )
        if broker.username:
            password = broker.password.get_secret_value() if broker.password else None
            client.username_pw_set(broker.username, password)
        if broker.tls:
            client.tls_set()
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=15)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda *args: self.subscribed.set()
        return client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._plant.collector.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        broker = self._plant.broker
        log.info("connecting to MQTT broker %s:%d as %r", broker.host, broker.port,
                 self._plant.collector.client_id)
        self.client.connect_async(
            broker.host, broker.port, keepalive=broker.keepalive_s,
            clean_start=False, properties=props,
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: Client, userdata: Any, flags: Any, reason: Any,
                    props: Any) -> None:
        if reason.is_failure:
            self._failures.failure("connection refused: %s", reason)
            return
        with self._lock:
            self._generation += 1
            self.connected = True
        self._failures.success()
        filters = subscriptions(self._plant)
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(f, options) for f in filters])
        log.info("connected to MQTT broker (session present: %s); subscribed to %s",
                 flags.session_present, ", ".join(filters))

    def _on_connect_fail(self, client: Client, userdata: Any) -> None:
        self._failures.failure("cannot connect (retrying)")

    def _on_disconnect(self, client: Client, userdata: Any, flags: Any, reason: Any,
                       props: Any) -> None:
        with self._lock:
            self.connected = False
        if reason.is_failure:
            self._failures.failure("connection lost: %s (reconnecting)", reason)

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")  # noqa: SLF001
        self.received += 1
        self._inbox.put(Inbound(topic, message.payload, message.mid, message.qos,
                                self._generation, time.time()))

    def ack(self, acks: Iterable[tuple[int, int, int]]) -> int:
        """Acknowledge (mid, qos, generation) of the current connection; returns how many
        were sent (the others belong to a closed connection and will come again)."""
        sent = 0
        with self._lock:
            for mid, qos, generation in acks:
                if qos > 0 and generation == self._generation and self.connected:
                    self.client.ack(mid, qos)
                    sent += 1
        return sent

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)
