"""The one place that builds a broker connection: every component's paho-mqtt client
(MQTT v5, callback API 2) is constructed here, with its client id, credentials, TLS,
session (clean start, expiry, receive maximum), in-flight window, last will and connect
arguments, and reconnects at the one rhythm of `shared/backoff.py`.

What differs per component is only how the socket is driven, each for a measured reason
(docs/architecture.md, "MQTT connections"):

- `BrokerThread` (below): paho's network loop on a named thread of ours — the API and
  the alarm engine;
- the edge agent (`edge/mqtt.py`): the asyncio event loop reads and writes the socket;
- the collector (`collector/mqtt.py`, `collector/fastclient.py`): its own select loop
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from paho.mqtt.client import Client, ConnectFlags
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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
                 backoff_max_s: float = RECONNECT_MAX_S) -> None:
        self.broker = broker
        self.connected = threading.Event()
        self.on_connected: OnConnected = on_connected or (lambda client, present: None)
        self._name = name
        self._client_id = session.client_id
        self._backoff = reconnect_backoff(backoff_max_s)
        self._failures = FailureLog(log, broker_label(broker))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = new_client(broker, session, Client)
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
