"""The MQTT foundation (shared/mqtt.py) against a real mosquitto: session settings, the
last will, reconnecting at the shared backoff, and a refused login that is retried
without resetting the backoff."""

from __future__ import annotations

import getpass
import queue
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes

from shopfloor.shared.mqtt import BrokerThread, Session, Will, new_client, reconnect_backoff
from shopfloor.shared.plant import Broker
from tests.harness.services import LOOPBACK, Service, require_binary, running

WAIT_S = 20.0  # generous: the machine is shared and loaded


class Observer:
    """A plain paho client that records what arrives on one topic filter."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.inbox: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.inbox.put((m.topic, m.payload, m.retain))
        self.client.connect(LOOPBACK, port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()

    def next(self) -> tuple[str, bytes, bool]:
        return self.inbox.get(timeout=WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def topic() -> str:
    return f"test/{uuid.uuid4().hex[:10]}"


def broker_at(port: int, **fields: object) -> Broker:
    return Broker.model_validate({"host": LOOPBACK, "port": port, "keepalive_s": 5, **fields})


def test_session_settings_become_connect_arguments() -> None:
    clean = new_client(broker_at(1883), Session("a"), mqtt.Client)
    assert clean._clean_start is True and clean._connect_properties is None
    kept = new_client(broker_at(1883), Session("b", expiry_s=0, receive_maximum=7), mqtt.Client)
    assert kept._clean_start is False
    props = kept._connect_properties
    assert props is not None and props.packetType == PacketTypes.CONNECT
    assert (props.SessionExpiryInterval, props.ReceiveMaximum) == (0, 7)
    assert kept._client_id == b"b" and kept._protocol == mqtt.MQTTv5


def test_reconnect_backoff_is_the_shared_one_and_never_below_its_start() -> None:
    backoff = reconnect_backoff(0.1)  # a cap below the first delay is raised to it
    assert backoff.base_s == backoff.max_s == 0.5


def test_a_persistent_session_gets_what_was_published_while_away(mosquitto, topic) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    present: list[bool] = []

    def subscribe(client: mqtt.Client, session_present: bool) -> None:
        present.append(session_present)
        client.subscribe(topic, qos=1)

    def link() -> BrokerThread:
        thread = BrokerThread(broker_at(mosquitto.port), Session(f"keep-{topic}", expiry_s=60),
                              name="test-mqtt", on_connected=subscribe)
        thread.client.on_message = lambda c, u, m: got.put(m.payload)
        thread.client.on_subscribe = lambda *args: subscribed.set()
        return thread

    subscribed = threading.Event()
    first = link()
    assert first.start(WAIT_S)
    assert subscribed.wait(WAIT_S)
    first.stop()
    sender = Observer(mosquitto.port, f"{topic}/unused")
    sender.client.publish(topic, b"while away", qos=1).wait_for_publish(WAIT_S)
    sender.close()
    second = link()
    try:
        assert second.start(WAIT_S)
        assert got.get(timeout=WAIT_S) == b"while away"
        assert present == [False, True]
    finally:
        second.stop()


def test_the_will_is_published_when_the_link_drops_and_the_link_comes_back(
        mosquitto, topic) -> None:
    watcher = Observer(mosquitto.port, topic)
    connects: queue.Queue[bool] = queue.Queue()
    session = Session(f"will-{topic}", will=Will(topic, b'{"online": false}'))
    link = BrokerThread(broker_at(mosquitto.port), session, name="test-mqtt",
                        on_connected=lambda client, present: connects.put(present))
    try:
        assert link.start(WAIT_S)
        connects.get(timeout=WAIT_S)
        sock = link.client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # the connection dies without a DISCONNECT
        assert watcher.next() == (topic, b'{"online": false}', False)  # retained: live copy
        connects.get(timeout=WAIT_S)  # reconnected by itself
        link.client.publish(f"{topic}/after", b"back", qos=1)  # from this thread
    finally:
        link.stop()
    watcher.close()


def test_the_link_outlives_a_broker_restart_and_stops_promptly_during_an_outage(
        own_mosquitto, topic) -> None:
    watcher = Observer(own_mosquitto.port, topic)
    link = BrokerThread(broker_at(own_mosquitto.port), Session(f"restart-{topic}"),
                        name="test-mqtt")
    try:
        assert link.start(WAIT_S)
        own_mosquitto.stop()
        watcher.close()
        own_mosquitto.start()
        watcher = Observer(own_mosquitto.port, topic)
        assert link.connected.wait(WAIT_S)
        # a publish from another thread is written by the link's thread
        threading.Thread(target=link.client.publish, args=(topic, b"after", 1)).start()
        assert watcher.next()[1] == b"after"
        own_mosquitto.stop()
        link.stop(timeout_s=WAIT_S)
        assert link._thread is not None and not link._thread.is_alive()
    finally:
        link.stop()
        watcher.close()


class LoginRequired(Service):
    """mosquitto that refuses every login (anonymous off, no user known)."""

    name = "mosquitto"

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} {LOOPBACK}\nallow_anonymous false\n"
                        f"user {getpass.getuser()}\nlog_dest stdout\n")
        return [require_binary("mosquitto"), "-c", str(conf)]


@pytest.fixture
def refusing_broker(tmp_path: Path) -> Iterator[LoginRequired]:
    with running(LoginRequired(tmp_path / "refusing")) as broker:
        yield broker


def test_a_refused_login_is_retried_at_a_growing_delay(refusing_broker) -> None:
    """A CONNACK that refuses must not count as a success: the backoff keeps growing
    (a reset on every TCP connect would hammer the broker at the first delay)."""
    refused = threading.Event()
    broker = broker_at(refusing_broker.port, username="nobody", password="wrong")
    link = BrokerThread(broker, Session("nobody"), name="test-mqtt", backoff_max_s=0.5)
    link.client.on_connect_fail = lambda *args: None
    original = link.client.on_connect

    def on_connect(*args: object) -> None:
        original(*args)  # type: ignore[misc]
        if link.failed_attempts >= 2:
            refused.set()

    link.client.on_connect = on_connect
    try:
        assert not link.start()
        assert refused.wait(WAIT_S)
        assert not link.connected.is_set()
    finally:
        link.stop()
