"""The edge's MQTT link against a real mosquitto: its cheaper hot path (every queued
packet in one write, a plain PUBACK handled without decoding reason code and
properties, no walk of the in-flight messages when none is queued) keeps paho's
meaning — every message arrives once and in order, every PUBACK reaches `on_publish`
with the right outcome: a PUBACK with a success code (0, or 0x10 "no subscribers") is
a success, one that carries a failure code (an ACL refusal) still counts as refused."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shopfloor.edge.mqtt import SESSION_EXPIRY_S, EdgeMqttLink
from shopfloor.shared.mqtt import Session
from shopfloor.shared.plant import Broker
from tests.deploy.conftest import PASSWORD, SecuredMosquitto, User
from tests.harness.services import LOOPBACK, running

ACL = "user edge\ntopic readwrite ok/#\ntopic write lonely/#\n\nuser reader\ntopic read #\n"
TIMEOUT_S = 60.0  # generous: the machine is shared


async def _publish_all(port: int, messages: list[tuple[str, bytes]],
                       inflight: int) -> dict[int, bool]:
    """Publish every message through an EdgeMqttLink, at most `inflight` unacknowledged
    (as the publisher does), and return each message's PUBACK outcome by index."""
    broker = Broker(host=LOOPBACK, port=port, username="edge",
                    password=SecretStr(PASSWORD.format(user="edge")))
    session = Session("edge-link-test", expiry_s=SESSION_EXPIRY_S, inflight=inflight)
    link = EdgeMqttLink(broker, session, backoff_max_s=1)
    outcomes: dict[int, bool] = {}
    index_of: dict[int, int] = {}
    space = asyncio.Event()

    def acked(mid: int, ok: bool) -> None:
        outcomes[index_of.pop(mid)] = ok
        space.set()

    link.on_publish = acked
    runner = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(TIMEOUT_S):
            await link.connected.wait()
            for i, (topic, payload) in enumerate(messages):
                while len(index_of) >= inflight:
                    space.clear()
                    await space.wait()
                index_of[link.publish(topic, payload)] = i
            while index_of:
                space.clear()
                await space.wait()
        link.disconnect()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return outcomes


def test_publishes_arrive_in_order_and_refusals_stay_refused(tmp_path: Path) -> None:
    with running(SecuredMosquitto(tmp_path, ACL, ["edge", "reader"])) as broker:
        reader = User(broker.port, "reader")
        try:
            assert reader.connected.wait(TIMEOUT_S)
            reader.subscribe("ok/#")
            # Bursts larger than the in-flight window, with refused topics (PUBACK 0x87)
            # and topics nobody subscribed to (PUBACK 0x10, a success) in between.
            kinds = ["ok/{}", "ok/{}", "denied/{}", "ok/{}", "lonely/{}", "ok/{}", "ok/{}"]
            messages = [(kinds[i % 7].format(i % 5), b"m%d" % i) for i in range(600)]
            outcomes = asyncio.run(_publish_all(broker.port, messages, inflight=50))
            assert outcomes == {i: not t.startswith("denied") for i, (t, _) in enumerate(messages)}
            wanted = [(t, p) for t, p in messages if t.startswith("ok/")]
            got: list[Any] = [reader.inbox.get(timeout=TIMEOUT_S) for _ in wanted]
            assert got == wanted  # each once, in order (one subscriber, QoS 1, one session)
            assert reader.inbox.empty()
        finally:
            reader.close()


async def _publish_across_a_cut(port: int) -> tuple[list[bytes], dict[int, list[bool]]]:
    """Publish 100 messages and let them go out, 100 more and cut the connection before
    they are written, 50 while it is down; return the payloads in publishing order and
    every PUBACK outcome reported per mid."""
    broker = Broker(host=LOOPBACK, port=port, username="edge",
                    password=SecretStr(PASSWORD.format(user="edge")))
    link = EdgeMqttLink(broker, Session("edge-cut-test", expiry_s=SESSION_EXPIRY_S),
                        backoff_max_s=1)
    acks: dict[int, list[bool]] = {}
    link.on_publish = lambda mid, ok: acks.setdefault(mid, []).append(ok)
    runner = asyncio.create_task(link.run())
    payloads: list[bytes] = []
    mids: list[int] = []

    def publish(n: int) -> None:
        for _ in range(n):
            payloads.append(b"m%d" % len(payloads))
            mids.append(link.publish("ok/cut", payloads[-1]))

    try:
        async with asyncio.timeout(TIMEOUT_S):
            await link.connected.wait()
            publish(100)
            await asyncio.sleep(0)  # the flush writes them
            publish(100)  # queued, not yet written
            link.client.socket().shutdown(socket.SHUT_RDWR)
            while link.connected.is_set():
                await asyncio.sleep(0.01)
            publish(50)  # while disconnected: sent after the next CONNACK
            while set(acks) != set(mids):
                await asyncio.sleep(0.02)
        link.disconnect()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return payloads, acks


def test_a_cut_connection_loses_nothing_and_keeps_the_order(tmp_path: Path) -> None:
    """Messages in flight or queued when the connection drops, and messages published
    while it is down, are sent after the reconnect: each acknowledged exactly once, each
    delivered, first deliveries in publishing order (repeats of what had arrived are
    allowed: QoS 1)."""
    with running(SecuredMosquitto(tmp_path, ACL, ["edge", "reader"])) as broker:
        reader = User(broker.port, "reader")
        try:
            assert reader.connected.wait(TIMEOUT_S)
            reader.subscribe("ok/#")
            payloads, acks = asyncio.run(_publish_across_a_cut(broker.port))
            assert len(acks) == len(payloads) == 250
            assert all(outcomes == [True] for outcomes in acks.values())
            first: list[bytes] = []
            while len(first) < len(payloads):
                _, payload = reader.inbox.get(timeout=TIMEOUT_S)
                if payload not in first:
                    first.append(payload)
            assert first == payloads
        finally:
            reader.close()
