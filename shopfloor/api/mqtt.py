"""The API's MQTT link: one paho client (its own network thread) that subscribes to the
retained state, agent status, telemetry and command results of the site, feeds the live
view and the command bus, and publishes commands (QoS 1, never waiting on the loop).

The session is persistent (MQTT v5, a stable client id, `clean_start=False` on every
connect, a session expiry): while the API is disconnected or restarting, the broker
queues the QoS 1 messages of its subscriptions (command results, state, agent status)
and delivers them on reconnect. Telemetry is subscribed at QoS 0: only the live view."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from shopfloor.api.errors import Unavailable
from shopfloor.shared import topics
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Broker

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
CONNECT_TIMEOUT_S = 5.0


class ApiMqttLink:
    """Subscribe to a site's machine topics; hand each message to `on_message`
    (called in paho's thread: handlers must be quick and thread-safe)."""

    def __init__(self, broker: Broker, site: str, on_message: MessageHandler, *,
                 client_id: str, session_expiry_s: int) -> None:
        self._broker = broker
        self._site = site
        self._client_id = client_id
        self._session_expiry_s = session_expiry_s
        self._on_message = on_message
        self._connected = threading.Event()
        self._failures = FailureLog(log, f"broker {broker.host}:{broker.port}")
        self._client = self._make_client()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=mqtt.MQTTv5,
        )
        if self._broker.username:
            password = self._broker.password.get_secret_value() if self._broker.password else None
            client.username_pw_set(self._broker.username, password)
        if self._broker.tls:
            client.tls_set()
        client.max_inflight_messages_set(50)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_socket_open = _no_delay
        return client

    def start(self, wait_s: float = CONNECT_TIMEOUT_S) -> None:
        """Connect in the background; wait up to `wait_s` for the first connection (the
        API still starts without a broker and keeps retrying; /healthz says so)."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._session_expiry_s
        try:
            # clean_start=False on every connect, the first included: paho's default
            # (first only) would drop what the broker queued while the API was down.
            self._client.connect_async(self._broker.host, self._broker.port,
                                       self._broker.keepalive_s, clean_start=False,
                                       properties=properties)
        except (OSError, ValueError) as exc:
            self._failures.failure("cannot connect: %s", exc)
        self._client.loop_start()
        if not self._connected.wait(wait_s):
            self._failures.failure("not connected after %.1f s; retrying", wait_s)

    def stop(self) -> None:
        """Disconnect; the session stays on the broker (the DISCONNECT keeps the
        CONNECT's expiry), so results keep being queued for the next start."""
        self._client.disconnect()
        self._client.loop_stop()

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

    def _handle_connect(self, client: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags,
                        reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            self._failures.failure("connection refused: %s", reason)
            return
        # Also when the session is present: subscribing again is idempotent, and covers
        # a session the broker lost (expired, or a broker without persistence restarted).
        client.subscribe(self._subscriptions())
        self._failures.success()
        self._connected.set()
        log.info("connected to broker %s:%d as %s (%s)", self._broker.host,
                 self._broker.port, self._client_id,
                 "session resumed" if flags.session_present else "new session")

    def _handle_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any,
                           _p: Any = None) -> None:
        self._connected.clear()
        if reason.is_failure:
            self._failures.failure("disconnected: %s", reason)

    def _handle_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._on_message(message.topic, bytes(message.payload))
        except Exception:  # a bad message must never kill the network thread
            log.exception("handling %s failed", message.topic)


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Commands are small and latency-bound: send each packet at once (no Nagle delay)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
