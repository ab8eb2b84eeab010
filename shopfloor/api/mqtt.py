"""The API's MQTT link: one paho client (its own network thread) that subscribes to the
retained state, agent status, telemetry and command results of the site, feeds the live
view and the command bus, and publishes commands (QoS 1, never waiting on the loop)."""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.api.errors import Unavailable
from shopfloor.shared import topics
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Broker

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
CONNECT_TIMEOUT_S = 5.0


class MqttLink:
    """Subscribe to a site's machine topics; hand each message to `on_message`
    (called in paho's thread: handlers must be quick and thread-safe)."""

    def __init__(self, broker: Broker, site: str, on_message: MessageHandler) -> None:
        self._broker = broker
        self._site = site
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
            client_id=f"shopfloor-api-{self._site}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
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
        try:
            self._client.connect_async(self._broker.host, self._broker.port,
                                       self._broker.keepalive_s)
        except (OSError, ValueError) as exc:
            self._failures.failure("cannot connect: %s", exc)
        self._client.loop_start()
        if not self._connected.wait(wait_s):
            self._failures.failure("not connected after %.1f s; retrying", wait_s)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue a QoS 1 message; Unavailable when the broker is not connected."""
        if not self.connected:
            raise Unavailable("MQTT broker not connected; command not sent", "broker_down")
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise Unavailable(f"publish failed: {mqtt.error_string(info.rc)}", "broker_down")

    def _subscriptions(self) -> list[tuple[str, int]]:
        site = self._site
        return [
            (topics.all_of_kind(site, topics.STATE), 1),
            (topics.all_of_kind(site, topics.TELEMETRY), 0),
            (topics.all_of_kind(site, topics.CMD_RESULT), 1),
            (topics.status_topic(site, "+"), 1),
        ]

    def _handle_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any,
                        _p: Any = None) -> None:
        if reason.is_failure:
            self._failures.failure("connection refused: %s", reason)
            return
        client.subscribe(self._subscriptions())
        self._failures.success()
        self._connected.set()
        log.info("connected to broker %s:%d", self._broker.host, self._broker.port)

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
