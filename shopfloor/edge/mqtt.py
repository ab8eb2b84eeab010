"""The agent's one MQTT connection: paho-mqtt 2 (MQTT v5) driven by the asyncio loop.

paho's socket callbacks register the socket with the event loop (as aiomqtt does), so
reads, writes and PUBACK callbacks all run on the loop thread. The TCP connect is ours
(asyncio, under a timeout), and so is the TLS handshake (`shared/mqtt.start_tls`); paho
gets the connected socket, so nothing blocks the loop.
`run()` (a supervised task) keeps the connection up: the shared reconnect backoff
between attempts, birth message on every CONNACK. The client, its session and last will
(offline, retained) are built by `shared/mqtt.py`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from shopfloor.shared.logs import FailureLog
from shopfloor.shared.mqtt import (
    LeanClient,
    Session,
    broker_label,
    new_client,
    puback_reason,
    reconnect_backoff,
    start_tls,
    tcp_no_delay,
    tls_context,
)
from shopfloor.shared.plant import Broker

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
SESSION_EXPIRY_S = 3600  # the agent's subscription (cmd) outlives a short outage
MISC_PERIOD_S = 1.0

OnPublish = Callable[[int, bool], None]


class _Client(LeanClient):
    """The foundation's lean client (`shared/mqtt.LeanClient`: QoS 1 publishing and
    PUBACKs without paho's per-message objects, large reads, one send per batch),
    handed a socket we connected asynchronously (paho's own connect blocks for up to
    its connect timeout)."""

    prepared: socket.socket | None = None

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        if isinstance(tcp_sock, ssl.SSLSocket):  # our handshake is done (start_tls)
            return tcp_sock
        return super()._ssl_wrap_socket(tcp_sock)

    def _create_socket_connection(self) -> socket.socket:
        sock, self.prepared = self.prepared, None
        if sock is None:
            raise OSError("no connected socket prepared")
        return sock


OnMessage = Callable[[str, bytes], None]


class EdgeMqttLink:
    """Owns the paho client. Set `on_publish(mid, ok)`, `on_message(topic, payload)`
    and `on_connected()` before `run()`; `connected` is an asyncio.Event."""

    def __init__(self, broker: Broker, session: Session, *, backoff_max_s: float) -> None:
        self.broker = broker
        self.connected = asyncio.Event()
        self.on_publish: OnPublish = lambda mid, ok: None
        self.on_message: OnMessage = lambda topic, payload: None
        self.on_connected: Callable[[], None] = lambda: None
        self._backoff = reconnect_backoff(backoff_max_s)
        self._failures = FailureLog(log, broker_label(broker))
        self._tls = tls_context(broker) if broker.tls else None
        self._loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._closing = False
        self._writing = False
        self._flush_scheduled = False
        self._why_lost = ""
        self.client = self._make_client(session)

    def _make_client(self, session: Session) -> _Client:
        client = new_client(self.broker, session, _Client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_acked = self._on_acked
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    async def run(self) -> None:
        """Connect, stay connected, reconnect after a loss. Runs until cancelled."""
        misc = asyncio.create_task(self._misc(), name="mqtt-misc")
        try:
            while True:
                if await self._connect_once():
                    await self._lost.wait()
                await asyncio.sleep(self._backoff.next_delay())
        finally:
            misc.cancel()

    async def _connect_once(self) -> bool:
        self._lost.clear()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                self.client.prepared = await self._open_socket()
                self.client.reconnect()
                await self._connack()
        except (OSError, TimeoutError, mqtt.WebsocketConnectionError) as exc:
            self._failures.failure("cannot connect: %s", exc or type(exc).__name__)
            if self.client.prepared is not None:
                self.client.prepared.close()
                self.client.prepared = None
            self._drop_socket()
            return False
        return True

    async def _connack(self) -> None:
        """Wait for the CONNACK; OSError when the broker refuses or drops us instead."""
        waits = {
            asyncio.ensure_future(self.connected.wait()),
            asyncio.ensure_future(self._lost.wait()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if not self.connected.is_set():
            raise OSError(f"no CONNACK: {self._why_lost}")

    async def _open_socket(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        host, port = self.broker.host, self.broker.port
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"cannot resolve {host}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            tcp_no_delay(sock)  # command results are small and awaited
            if self._tls is not None:
                return await start_tls(sock, host, self._tls)
            return sock
        raise error

    async def _misc(self) -> None:
        """Keepalive pings and timeouts (paho's loop_misc) once a second."""
        while True:
            await asyncio.sleep(MISC_PERIOD_S)
            if self.client.loop_misc() != mqtt.MQTT_ERR_SUCCESS and self.connected.is_set():
                self._mark_lost("keepalive")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Queue one QoS 1 message; returns its mid (the PUBACK names it). ValueError or
        TypeError when it can never be published (a topic with wildcards, ...)."""
        return self.client.publish_qos1(topic, payload, retain)

    async def publish_and_wait(self, topic: str, payload: bytes, timeout_s: float) -> bool:
        """Publish (QoS 1, retained) and wait up to `timeout_s` for the PUBACK."""
        mid = self.publish(topic, payload, retain=True)
        waiter = self._waiters[mid] = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(mid, None)

    def subscribe(self, topics: list[str]) -> None:
        if topics:
            self.client.subscribe([(t, 1) for t in topics])

    def disconnect(self) -> None:
        """Clean DISCONNECT (the will is not sent; publish offline yourself first)."""
        if self.connected.is_set():
            self._closing = True
            self.client.disconnect()
            self.client.loop_write()

    # paho callbacks, all on the loop thread.
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._mark_lost(f"refused: {reason}")
            return
        self._failures.success()
        self._backoff.reset()
        log.info("connected to broker %s:%d", self.broker.host, self.broker.port)
        self.connected.set()
        self.on_connected()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self.connected.is_set() and not self._closing:
            self._failures.failure("connection lost: %s", reason)
        self._mark_lost(str(reason))

    def _mark_lost(self, why: str) -> None:
        self._why_lost = why
        self.connected.clear()
        self._lost.set()

    def _on_acked(self, mid: int, code: int) -> None:
        ok = code < 0x80
        if not ok:
            log.error("broker refused message mid=%d: %s", mid, puback_reason(code))
        waiter = self._waiters.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ok)
        self.on_publish(mid, ok)

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.on_message(message.topic, bytes(message.payload))

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self._loop.add_reader(sock, self._read)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        """paho asks for this after every queued packet. On the loop thread, writes are
        coalesced into one flush per loop pass (no selector change per message); only a
        full socket buffer makes us wait for writability."""
        if self._writing:
            self._loop.add_writer(sock, self._write)
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _on_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _read(self) -> None:
        for _ in range(1000):  # paho reads a bounded number of packets per call: empty
            if self.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:  # our buffer (bounded)
                self._drop_socket()
                return
            if not self.client.buffered or self.client.socket() is None:
                break
        if self._flush_scheduled:  # PUBACKs freed slots and the publisher refilled them:
            self._write()  # send now, not a loop pass later (the scheduled flush finds nothing)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._write()

    def _write(self) -> None:
        self._writing = True
        try:
            rc = self.client.loop_write()
        finally:
            self._writing = False
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._drop_socket()

    def _drop_socket(self) -> None:
        """After a failed read/write/connect: close the socket so the next reconnect is clean."""
        sock = self.client.socket()
        if sock is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        self._mark_lost("socket error")
