"""The API's MQTT link: one paho client (its own network thread) that subscribes to the
retained state, agent status, telemetry and command results of the site, feeds the live
view and the command bus, and publishes commands (QoS 1, never waiting on the loop).

The session is persistent (MQTT v5, a stable client id, `clean_start=False` on every
connect, a session expiry): while the API is disconnected or restarting, the broker
queues the QoS 1 messages of its subscriptions (command results, state, agent status)
and delivers them on reconnect. Telemetry is subscribed at QoS 0: only the live view.

Every sample of the plant reaches the API (1,000 messages/s at 1,000 machines at 1 Hz):
the QoS 0 messages take `FastClient`'s receive path (no per-message paho objects, one
large `recv` for many messages), the QoS 1 ones paho's own, which acknowledges them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from shopfloor.api.errors import Unavailable
from shopfloor.shared import topics
from shopfloor.shared.fastclient import FastClient
from shopfloor.shared.mqtt import BrokerThread, Session, tcp_no_delay
from shopfloor.shared.plant import Broker

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
CONNECT_TIMEOUT_S = 5.0
INFLIGHT = 50


class ApiMqttLink:
    """Subscribe to a site's machine topics; hand each message to `on_message`
    (called on the link's network thread: handlers must be quick and thread-safe)."""

    def __init__(self, broker: Broker, site: str, on_message: MessageHandler, *,
                 client_id: str, session_expiry_s: int) -> None:
        self._site = site
        self._on_message = on_message
        session = Session(client_id, expiry_s=session_expiry_s, inflight=INFLIGHT)
        self._link = BrokerThread(broker, session, name="api-mqtt",
                                  on_connected=self._subscribe, client_class=FastClient)
        self._client = cast(FastClient, self._link.client)
        self._client.on_message = self._handle_message
        self._client.on_publish_fast = self._handle_fast
        self._client.on_socket_open = lambda _c, _u, sock: tcp_no_delay(sock)

    @property
    def connected(self) -> bool:
        return self._link.connected.is_set()

    def start(self, wait_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect in the background; wait up to `wait_s` for the first connection (the
        API still starts without a broker and keeps retrying; /healthz says so)."""
        self._link.start(wait_s)

    def stop(self) -> None:
        """Disconnect; the session stays on the broker (the DISCONNECT keeps the
        CONNECT's expiry), so results keep being queued for the next start."""
        self._link.stop()

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue a QoS 1 message; Unavailable when the broker is not connected."""
        if not self.connected:
            raise Unavailable("MQTT broker not connected; command not sent", "broker_down")
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise Unavailable(f"publish failed: {mqtt.error_string(info.rc)}", "broker_down")

    def _subscriptions(self) -> list[tuple[str, SubscribeOptions]]:
        """QoS 1 where the broker must queue for us while we are away; telemetry at QoS 0
        (not queued). Retained state comes again on every resubscribe: harmless."""
        site = self._site
        return [
            (topics.all_of_kind(site, topics.STATE), SubscribeOptions(qos=1)),
            (topics.all_of_kind(site, topics.TELEMETRY), SubscribeOptions(qos=0)),
            (topics.all_of_kind(site, topics.CMD_RESULT), SubscribeOptions(qos=1)),
            (topics.status_topic(site, "+"), SubscribeOptions(qos=1)),
            (topics.all_of_kind(site, topics.KPI), SubscribeOptions(qos=0)),  # retained
            (topics.alarm_result_topic(site), SubscribeOptions(qos=1)),
        ]

    def _subscribe(self, client: mqtt.Client, _session_present: bool) -> None:
        # Also when the session is present: subscribing again is idempotent, and covers
        # a session the broker lost (expired, or a broker without persistence restarted).
        client.subscribe(self._subscriptions())

    def _handle_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._deliver(message.topic, bytes(message.payload))

    def _handle_fast(self, topic: bytes, payload: bytes, _mid: int, _qos: int) -> None:
        self._deliver(topic.decode("utf-8", "replace"), payload)

    def _deliver(self, topic: str, payload: bytes) -> None:
        try:
            self._on_message(topic, payload)
        except Exception:  # a bad message must never kill the network thread
            log.exception("handling %s failed", topic)
