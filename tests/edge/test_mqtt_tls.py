"""The edge link over TLS (a mosquitto that requires client certificates): messages
carry and are acknowledged, and the TLS handshake waits on the event loop instead of
blocking it (paho's own handshake would stop every poller until the broker answers)."""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
from pathlib import Path

from shopfloor.edge.mqtt import SESSION_EXPIRY_S, EdgeMqttLink
from shopfloor.shared.mqtt import BrokerThread, Session
from tests.harness.services import LOOPBACK
from tests.harness.tls import tls_broker_settings

TIMEOUT_S = 60.0  # generous: the machine is shared


async def _publish(link: EdgeMqttLink, count: int) -> dict[int, bool]:
    acked: dict[int, bool] = {}
    done = asyncio.Event()

    def on_publish(mid: int, ok: bool) -> None:
        acked[mid] = ok
        if len(acked) == count:
            done.set()

    link.on_publish = on_publish
    runner = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await link.connected.wait()
            for i in range(count):
                link.publish("tls-edge/x", b"m%d" % i)
            await done.wait()
        link.disconnect()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return acked


def test_the_edge_link_publishes_over_tls_with_a_client_certificate(tls_mosquitto, pki) -> None:
    broker = tls_broker_settings(tls_mosquitto.port, pki)
    got: queue.Queue[bytes] = queue.Queue()
    subscribed = threading.Event()
    reader = BrokerThread(broker, Session("tls-edge-reader"), name="test-reader",
                          on_connected=lambda client, _: client.subscribe("tls-edge/#", qos=1))
    reader.client.on_message = lambda c, u, m: got.put(m.payload)
    reader.client.on_subscribe = lambda *args: subscribed.set()
    try:
        assert reader.start(TIMEOUT_S) and subscribed.wait(TIMEOUT_S)

        async def run() -> dict[int, bool]:
            session = Session("tls-edge", expiry_s=SESSION_EXPIRY_S, inflight=20)
            return await _publish(EdgeMqttLink(broker, session, backoff_max_s=1), 200)

        acked = asyncio.run(run())
        assert len(acked) == 200 and all(acked.values())
        assert [got.get(timeout=TIMEOUT_S) for _ in range(200)] == [b"m%d" % i
                                                                    for i in range(200)]
    finally:
        reader.stop()


class SilentServer:
    """Accepts TCP connections and never answers (a TLS handshake to it hangs)."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_hanging_tls_handshake_does_not_stop_the_event_loop(pki, tmp_path: Path) -> None:
    """While the handshake waits for a server that never answers, other tasks run and
    the attempt has not failed: it waits on the loop (a blocking handshake would hold
    the loop until it timed out, so this coroutine would resume only after a failure)."""
    server = SilentServer()
    broker = tls_broker_settings(server.port, pki)

    async def run() -> tuple[bool, bool]:
        link = EdgeMqttLink(broker, Session("tls-silent", inflight=20), backoff_max_s=1)
        runner = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(asyncio.to_thread(server.accepted.wait, TIMEOUT_S),
                                   TIMEOUT_S + 5)
            await asyncio.sleep(0.2)  # the loop is free: this returns while the link waits
            return link._failures.failures == 0, link.connected.is_set()
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    try:
        no_failure_yet, connected = asyncio.run(run())
    finally:
        server.close()
    assert server.accepted.is_set()
    assert no_failure_yet and not connected
