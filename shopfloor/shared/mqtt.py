"""The one place that builds a broker connection: every component's paho-mqtt client
(MQTT v5, callback API 2) is constructed here, with its client id, credentials, TLS,
session (clean start, expiry, receive maximum), in-flight window, last will and connect
arguments, and reconnects at the one rhythm of `shared/backoff.py`.

What differs per component is only how the socket is driven, each for a measured reason
(docs/architecture.md, "MQTT connections"):

- `BrokerThread` (below): paho's network loop on a named thread of ours — the API (with
  `shared/fastclient.FastClient` for its QoS 0 telemetry) and the alarm engine;
- the edge agent (`edge/mqtt.py`): the asyncio event loop reads and writes the socket,
  through `LeanClient` (below): QoS 1 publishing and acknowledging without paho's
  per-message objects;
- the collector (`collector/mqtt.py`, `shared/fastclient.py`): its own select loop
  with batched acks and a receive fast path.

Those drivers only call `client.reconnect()`: the connect arguments are set here, once.
tests/test_dependencies.py keeps it so (no other module constructs a paho client or sets
its credentials, TLS, will or connect arguments)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from paho.mqtt.client import Client, ConnectFlags
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from shopfloor.shared.backoff import Backoff
from shopfloor.shared.errors import BrokerSetupError
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Broker

log = logging.getLogger(__name__)

RECONNECT_FIRST_S = 0.5
"""First delay after a lost or refused connection; it doubles per failure up to a cap."""
RECONNECT_MAX_S = 10.0
LOOP_TIMEOUT_S = 1.0
"""`BrokerThread`: the longest select wait (keepalive and stop are checked at least this often)."""

TLS_HINT = "; does the broker accept this client's certificate (broker.tls_cert_file)?"
C = TypeVar("C", bound=Client)
OnConnected = Callable[[Client, bool], None]
"""(client, session_present) after an accepted CONNACK."""


@dataclass(frozen=True, slots=True)
class Will:
    """The last will: published by the broker, QoS 1 and retained, when the connection
    drops without a DISCONNECT (the agent status contract, docs/mqtt-contract.md)."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Session:
    """How a component's session with the broker lives.

    `expiry_s` None: a clean session that ends with the connection. A number: clean start
    off on every connect, the first included (paho's default, "first only", would wipe
    the session at every process start), and the broker keeps the subscriptions and
    queues QoS 1 messages for `expiry_s` seconds after a disconnect."""

    client_id: str
    expiry_s: int | None = None
    receive_maximum: int | None = None
    """Unacknowledged QoS 1 messages the broker may send us (MQTT v5; None: 65,535)."""
    inflight: int = 20
    """Our unacknowledged QoS 1 publishes at once (paho's window)."""
    manual_ack: bool = False
    will: Will | None = None

    def connect_properties(self) -> Properties | None:
        properties = Properties(PacketTypes.CONNECT)
        if self.expiry_s is not None:
            properties.SessionExpiryInterval = self.expiry_s
        if self.receive_maximum is not None:
            properties.ReceiveMaximum = self.receive_maximum
        return None if properties.isEmpty() else properties


def broker_label(broker: Broker) -> str:
    """How logs name the broker (never with credentials)."""
    return f"broker {broker.host}:{broker.port}"


def new_client(broker: Broker, session: Session, cls: type[C]) -> C:
    """A paho client of class `cls` (paho's `Client` or a component's subclass of it),
    ready for `reconnect()`: no socket is opened here."""
    client = cls(CallbackAPIVersion.VERSION2, client_id=session.client_id,
                 protocol=MQTTProtocolVersion.MQTTv5, manual_ack=session.manual_ack)
    client.max_inflight_messages_set(session.inflight)
    if broker.username:
        password = broker.password.get_secret_value() if broker.password else None
        client.username_pw_set(broker.username, password)
    if broker.tls:
        client.tls_set_context(tls_context(broker))
    if session.will is not None:
        client.will_set(session.will.topic, session.will.payload, qos=1, retain=True)
    client.connect_async(broker.host, broker.port, broker.keepalive_s,
                         clean_start=session.expiry_s is None,
                         properties=session.connect_properties())
    return client


def tls_context(broker: Broker) -> ssl.SSLContext:
    """TLS as the plant file sets it: the broker's certificate verified (chain and host
    name) against `tls_ca_file` or the system's trust store, and this component's client
    certificate when given. BrokerSetupError, naming the setting, when a file is unusable
    (call it at start for a one-line error; `new_client` does)."""
    try:
        context = ssl.create_default_context(cafile=broker.tls_ca_file)
    except (OSError, ValueError) as exc:
        raise BrokerSetupError(f"broker.tls_ca_file {broker.tls_ca_file}: {exc}") from exc
    if broker.tls_cert_file:
        try:
            context.load_cert_chain(broker.tls_cert_file, broker.tls_key_file)
        except (OSError, ValueError) as exc:
            raise BrokerSetupError(f"broker.tls_cert_file {broker.tls_cert_file} / "
                                   f"tls_key_file {broker.tls_key_file}: {exc}") from exc
    return context


async def start_tls(sock: socket.socket, host: str,
                    context: ssl.SSLContext) -> ssl.SSLSocket:
    """The TLS handshake on a connected non-blocking socket, waiting on the running
    asyncio loop (paho's own handshake blocks its caller: on an event loop, every other
    task would stop until the broker answers). Closes the socket on failure."""
    loop = asyncio.get_running_loop()
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    try:
        while True:
            try:
                tls.do_handshake()
                return tls
            except ssl.SSLWantReadError:
                await _ready(loop.add_reader, loop.remove_reader, tls)
            except ssl.SSLWantWriteError:
                await _ready(loop.add_writer, loop.remove_writer, tls)
    except BaseException:
        tls.close()
        raise


async def _ready(add: Callable[..., None], remove: Callable[[Any], object], sock: Any) -> None:
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    add(sock, wake)
    try:
        await waiter
    finally:
        remove(sock)


def reconnect_backoff(max_s: float = RECONNECT_MAX_S) -> Backoff:
    """The delays between connection attempts of every component (reset on CONNACK)."""
    return Backoff(RECONNECT_FIRST_S, max(RECONNECT_FIRST_S, max_s))


def tcp_no_delay(sock: Any) -> None:
    """Send each small packet at once (no Nagle delay of ~40 ms): for links whose
    messages are few and awaited (commands and their results)."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class BrokerThread:
    """One paho client driven by paho's network loop on a named daemon thread of ours,
    kept connected: attempts follow `reconnect_backoff`, reset by a CONNACK.

    Set the client's `on_message` / `on_subscribe` before `start()`. `on_connected(client,
    session_present)` runs on that thread after every accepted CONNACK (subscribe there).
    `client.publish` is safe from any thread: paho queues the packet and wakes the loop
    through its socket pair, and this thread writes it (as under `loop_start()`)."""

    def __init__(self, broker: Broker, session: Session, *, name: str,
                 on_connected: OnConnected | None = None,
                 backoff_max_s: float = RECONNECT_MAX_S,
                 client_class: type[Client] = Client) -> None:
        self.broker = broker
        self.connected = threading.Event()
        self.on_connected: OnConnected = on_connected or (lambda client, present: None)
        self._name = name
        self._client_id = session.client_id
        self._backoff = reconnect_backoff(backoff_max_s)
        self._failures = FailureLog(log, broker_label(broker))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = new_client(broker, session, client_class)
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_socket_register_write = _written_by_the_loop

    @property
    def failed_attempts(self) -> int:
        """Connection attempts that failed since the last accepted CONNACK."""
        return self._backoff.failures

    def start(self, wait_s: float = 0.0) -> bool:
        """Start the thread; wait up to `wait_s` for the first CONNACK. True when connected
        (when not, it keeps trying in the background)."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if wait_s > 0 and not self.connected.wait(wait_s):
            self._failures.failure("not connected after %.1f s; retrying", wait_s)
        return self.connected.is_set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Send DISCONNECT (the will is not published; a persistent session keeps its
        expiry) and end the thread."""
        self._stop.set()
        self.client.disconnect()  # queued and written by the loop thread, which then ends
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve()
            except Exception as exc:  # noqa: BLE001 - the network thread must never die
                self._failures.failure("network loop error, reconnecting: %r", exc)
            self.connected.clear()
            if not self._stop.is_set():
                self._stop.wait(self._backoff.next_delay())
        if self.client.socket() is not None:  # stopped while connecting
            self.client.disconnect()
            self.client.loop_write()

    def _serve(self) -> None:
        """One connection: connect, then run paho's loop until it drops or stop is set."""
        try:
            self.client.reconnect()
        except OSError as exc:  # refused, unreachable, timed out, TLS handshake failed
            self._failures.failure("cannot connect: %s", exc or type(exc).__name__)
            return
        while not self._stop.is_set():
            if self.client.loop(LOOP_TIMEOUT_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            if not self._read_buffered():
                return

    def _read_buffered(self) -> bool:
        """Read the packets already received into the socket's buffer (a `FastClient`'s
        `BufferedSocket`, or TLS) without a pass of paho's loop each: with nothing of ours
        in flight (QoS 0 telemetry), a pass reads one packet after a select. False when
        the connection failed."""
        pending = getattr(self.client.socket(), "pending", None)
        while pending is not None and pending() > 0 and not self._stop.is_set():
            if self.client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return False
        return True

    def _handle_connect(self, client: Client, _userdata: Any, flags: ConnectFlags,
                        reason: Any, _props: Any = None) -> None:
        if reason.is_failure:
            self._failures.failure("connection refused: %s", reason)
            return
        self._backoff.reset()
        self._failures.success()
        self.on_connected(client, flags.session_present)
        self.connected.set()
        log.info("connected to %s as %s (%s)", broker_label(self.broker), self._client_id,
                 "session resumed" if flags.session_present else "new session")

    def _handle_disconnect(self, _client: Client, _userdata: Any, _flags: Any, reason: Any,
                           _props: Any = None) -> None:
        accepted = self.connected.is_set()
        self.connected.clear()
        if self._stop.is_set() or not reason.is_failure:
            return
        if accepted:
            self._failures.failure("connection lost: %s", reason)
        else:  # the broker closed it before any CONNACK: TLS or the listener refused us
            self._failures.failure("closed by the broker before it answered the CONNECT (%s)%s",
                                   reason, TLS_HINT if self.broker.tls else "")


def _written_by_the_loop(_client: Client, _userdata: Any, _sock: Any) -> None:
    """Registered so that paho never writes on the publishing thread: the socket pair has
    woken the loop thread, which writes what is queued."""


OnAcked = Callable[[int, int], None]
"""(packet id, PUBACK reason code) when the broker acknowledged a
`LeanClient.publish_qos1`; a code >= 0x80 is a refusal (`puback_reason` names it)."""

_PUBLISH = 0x30
_PUBACK = 0x40
_DISCONNECT = 0xE0
_DUP = 0x08
_QOS1 = (b"\x32", b"\x33")  # PUBLISH, QoS 1, not retained / retained
_MAX_REMAINING = 268_435_455


class LeanClient(Client):
    """paho's client with a lean path for a component that publishes many small QoS 1
    messages and tracks their acknowledgements itself (the edge agent, whose outbox
    holds every message until its PUBACK). Everything else (CONNECT, SUBSCRIBE, incoming
    messages, keepalive, paho's own `publish`) is paho's.

    - `publish_qos1` packs the PUBLISH itself and queues the bytes: no `MQTTMessage`,
      `MQTTMessageInfo` (a `threading.Condition` each), state machine or debug
      formatting per message — they were most of paho's cost per publish;
    - its PUBACKs are taken straight from the receive buffer (a run of them per read)
      and reported to `on_acked(mid, code)`: a reason code >= 0x80 is a refusal (an
      ACL's, say); 0 and 0x10 ("no matching subscribers") are successes;
    - what is not acknowledged when the connection drops is sent again after the next
      CONNACK, in the order it was published, with the DUP flag where it had been sent
      (as paho does with its own messages); a message published while disconnected
      waits for that CONNACK too;
    - the socket is read in large chunks (paho asks for a packet's first byte, its
      length and its body separately: three system calls per PUBACK) and every queued
      packet is written in one send (paho sends each on its own).

    paho 2.x internals (`_packet_queue`, `_packet_read`, `_handle_pubackcomp`,
    `_handle_connack`, `_sock_recv`, `_packet_write`) are overridden, each kept to what
    paho itself would do; tests/edge/test_mqtt_link.py checks the meaning against a
    real mosquitto."""

    RECV_BYTES = 256 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_acked: OnAcked = lambda mid, code: None
        self._lean: dict[int, bytes] = {}  # unacknowledged publish_qos1 packets by mid
        self._unsent: set[int] = set()  # published while not connected
        self._heads: dict[str, bytes] = {}  # topic -> its packed, checked UTF-8 string
        self._inbox = b""
        self._at = 0

    @property
    def lean_inflight(self) -> int:
        """`publish_qos1` messages not yet acknowledged."""
        return len(self._lean)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handled."""
        return len(self._inbox) - self._at

    def publish_qos1(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Queue one QoS 1 PUBLISH (no properties); returns its packet id, which
        `on_acked` names. ValueError for a topic that cannot be published to (wildcards,
        empty, a NUL, too long) or a payload over MQTT's limit, TypeError for a payload
        not bytes."""
        head = self._heads.get(topic) or self._head(topic)
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        size = len(head) + 3 + len(payload)  # + packet id + empty properties
        if size > _MAX_REMAINING:
            raise ValueError("Payload too large.")
        mid = self._mid_generate()
        while mid in self._lean or mid in self._out_messages:
            mid = self._mid_generate()
        packet = b"".join((_QOS1[retain], _remaining_length(size), head,
                           mid.to_bytes(2, "big"), b"\x00", payload))
        self._lean[mid] = packet
        if self.is_connected():
            self._packet_queue(_PUBLISH, packet, mid, 1)
        else:
            self._unsent.add(mid)
        return mid

    def _head(self, topic: str) -> bytes:
        encoded = topic.encode("utf-8")
        self._raise_for_invalid_topic(encoded)
        if not encoded or b"\0" in encoded:  # paho lets both through; a broker hangs up
            raise ValueError("Publish topic is empty or holds a NUL character.")
        if len(self._heads) >= 65_536:  # topics come from our own rows; bound it anyway
            self._heads.clear()
        head = self._heads[topic] = len(encoded).to_bytes(2, "big") + encoded
        return head

    def reconnect(self) -> MQTTErrorCode:
        self._inbox, self._at = b"", 0
        return super().reconnect()

    def _handle_connack(self) -> MQTTErrorCode:
        waiting = list(self._lean.items())
        rc = super()._handle_connack()  # runs on_connect, which may publish anew
        if self.is_connected():
            for mid, packet in waiting:
                if mid in self._unsent:
                    self._unsent.discard(mid)
                else:
                    packet = bytes((packet[0] | _DUP,)) + packet[1:]
                self._packet_queue(_PUBLISH, packet, mid, 1)
        return rc

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._at >= len(self._inbox):
            self._inbox, self._at = super()._sock_recv(self.RECV_BYTES), 0
            if not self._inbox:
                return b""  # closed by the broker
        start = self._at
        self._at = min(start + bufsize, len(self._inbox))
        return self._inbox[start : self._at]

    def _packet_read(self) -> MQTTErrorCode:
        if self._in_packet["command"] == 0 and self._lean and self._at < len(self._inbox):
            self._take_pubacks()  # at a packet boundary, with bytes buffered
            if self._at >= len(self._inbox):
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_read()

    def _take_pubacks(self) -> None:
        """Acknowledge the run of plain PUBACKs (2..4 bytes, no properties) of lean
        messages at the head of the buffer; anything else is left to paho."""
        inbox, at, end, lean = self._inbox, self._at, len(self._inbox), self._lean
        taken = False
        while end - at >= 4 and inbox[at] == _PUBACK:
            size = inbox[at + 1]
            if not 2 <= size <= 4 or end - at < 2 + size or (size == 4 and inbox[at + 5]):
                break
            mid = inbox[at + 2] << 8 | inbox[at + 3]
            if lean.pop(mid, None) is None:
                break
            self._at = at = at + 2 + size
            taken = True
            self.on_acked(mid, 0 if size == 2 else inbox[at - size + 2])
        if taken:
            with self._msgtime_mutex:
                self._last_bytes_received = time.monotonic()

    def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
        body = self._in_packet["packet"]
        if cmd == "PUBACK" and len(body) >= 2:
            mid = body[0] << 8 | body[1]
            if self._lean.pop(mid, None) is not None:
                self.on_acked(mid, body[2] if len(body) > 2 else 0)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._handle_pubackcomp(cmd)

    def _packet_write(self) -> MQTTErrorCode:
        out = self._out_packet
        if len(out) > 1:
            parts = []
            while out and _mergeable(out[0]):
                packet = out.popleft()
                parts.append(packet["packet"][packet["pos"] :])
            if len(parts) > 1:
                data = b"".join(parts)
                out.appendleft({"command": _PUBACK, "mid": 0, "qos": 1, "pos": 0,
                                "to_process": len(data), "packet": data, "info": None})
            elif parts:
                out.appendleft(packet)
        return super()._packet_write()


def puback_reason(code: int) -> str:
    """The name of a PUBACK reason code (for logs)."""
    return f"{ReasonCode(PacketTypes.PUBACK, identifier=code)} (0x{code:02x})"


def _remaining_length(size: int) -> bytes:
    """MQTT's variable-length encoding of a packet's remaining length."""
    if size < 0x80:
        return bytes((size,))
    if size < 0x4000:
        return bytes((size & 0x7F | 0x80, size >> 7))
    out = bytearray()
    while size:
        size, byte = size >> 7, size & 0x7F
        out.append(byte | 0x80 if size else byte)
    return bytes(out)


def _mergeable(packet: Any) -> bool:
    """A queued packet whose completion paho does not track once written (all but QoS 0
    PUBLISH and DISCONNECT), so it may go out as part of a larger write."""
    command = packet["command"] & 0xF0
    return not (command == _PUBLISH and packet["qos"] == 0) and command != _DISCONNECT
