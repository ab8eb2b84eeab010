"""paho-mqtt's client made fast for a receive path: `FastClient` (PUBLISH without
properties straight to a hook) over a `BufferedSocket` (one large `recv` for paho's many
small ones). The collector receives every sample through it, the API the telemetry of
its live view. See docs/collector.md, "Threads and the receive fast path"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paho.mqtt.client import Client
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion


class BufferedSocket:
    """Wraps the client's socket so that paho's small reads (it asks for 1 byte of
    packet type, 1 byte at a time of remaining length, then the rest: 3-4 `recv` calls
    per message, each a syscall that releases and retakes the GIL) are served from one
    large `recv`. `pending()` tells our select loop that bytes are already buffered (the
    same attribute an SSL socket has). Every other attribute is the socket's own."""

    CHUNK = 256 * 1024

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._at = 0

    def recv(self, size: int) -> bytes:
        at = self._at
        available = len(self._buffer) - at
        if available <= 0:
            data = self._sock.recv(max(size, self.CHUNK))  # BlockingIOError passes through
            if len(data) <= size:
                return data
            self._buffer, at, available = data, 0, len(data)
        end = at + min(size, available)
        self._at = end
        return self._buffer[at:end]

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return len(self._buffer) - self._at + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


PublishHook = Callable[[bytes, bytes, int, int], None]
"""(topic, payload, mid, qos) of a received PUBLISH."""


class FastClient(Client):
    """paho's client with two private hooks of paho 2.x overridden (pinned `<3`; the
    tests fail loudly if they stop being called):

    * `_create_socket` wraps the socket in a `BufferedSocket`;
    * `_handle_publish`: a QoS 0/1 PUBLISH without MQTT v5 properties (what every
      shopfloor component sends) goes straight to `on_publish_fast` as
      (topic, payload, mid, qos), without paho's per-message `Properties`, `MQTTMessage`,
      `MQTTMessageInfo` (a `threading.Condition` each), topic-filter matching and debug
      formatting: together half of paho's receive cost. Anything else (properties, QoS 2,
      MQTT 3) takes paho's own path to `on_message`.

    QoS 1 only with manual ack (the collector's mode: the hook's owner acknowledges);
    with paho's auto-ack a QoS 1 message stays on paho's path, which sends the PUBACK.
    QoS 0 (the API's telemetry) needs no ack: the fast path in either mode."""

    on_publish_fast: PublishHook | None = None
    fast_path_hits = 0

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def _handle_publish(self) -> MQTTErrorCode:
        hook = self.on_publish_fast
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if hook is None or qos > 1 or (qos and not self._manual_ack) \
                or self._protocol != MQTTProtocolVersion.MQTTv5:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        if len(packet) < 3:
            return super()._handle_publish()  # malformed: paho says so
        at = 2 + ((packet[0] << 8) | packet[1])
        if len(packet) < at + (3 if qos else 1):
            return super()._handle_publish()  # malformed: paho says so
        topic = bytes(packet[2:at])
        mid = 0
        if qos:
            mid = (packet[at] << 8) | packet[at + 1]
            at += 2
        if packet[at] != 0:  # MQTT v5 properties present: paho's path
            return super()._handle_publish()
        self.fast_path_hits += 1
        hook(topic, bytes(packet[at + 1:]), mid, qos)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
