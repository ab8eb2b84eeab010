"""Several sites: the bridge section made by `shopfloor mosquitto-bridge` forwards a site's
topics to a central broker, and what the site publishes while the link is down arrives
when it is back. Two real mosquitto instances on loopback."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from shopfloor.deploy.mosquitto import Central, bridge_conf
from shopfloor.shared import topics
from shopfloor.shared.plant import Plant
from tests.deploy.conftest import SecuredMosquitto, User
from tests.harness.services import LOOPBACK


class Watcher:
    """A persistent-session subscriber on the central broker (survives its restart)."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.inbox: queue.Queue[str] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-watch",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_message = lambda c, u, m: self.inbox.put(m.topic)
        subscribed = queue.Queue[bool]()
        self.client.on_subscribe = lambda *a: subscribed.put(True)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect(LOOPBACK, port, clean_start=False, properties=props)
        self.client.loop_start()
        self.client.subscribe(topic_filter, qos=1)
        subscribed.get(timeout=5)

    def received(self, count: int) -> list[str]:
        return [self.inbox.get(timeout=15) for _ in range(count)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_until_bridged(client: User, notification_topic: str, state: bytes = b"1") -> None:
    """The bridge publishes "1" (retained) on its notification topic once connected, "0"
    once the site broker knows the link is down."""
    client.subscribe(notification_topic)
    while client.inbox.get(timeout=15)[1] != state:
        pass


@pytest.fixture
def brokers(tmp_path: Path, site_plant: Plant) -> Iterator[tuple[SecuredMosquitto,
                                                                  SecuredMosquitto]]:
    central = SecuredMosquitto(tmp_path / "central", None, [])
    central.start()
    bridge = bridge_conf(site_plant, Central(LOOPBACK, central.port), retry_s=1)
    site = SecuredMosquitto(tmp_path / "site", None, [], extra=bridge)
    site.start()
    yield site, central
    site.stop()
    central.stop()


def test_site_topics_reach_the_central_broker_across_an_outage(
    brokers: tuple[SecuredMosquitto, SecuredMosquitto], site_plant: Plant
) -> None:
    site, central = brokers
    site_id = site_plant.site.id
    watcher = Watcher(central.port, f"{topics.ROOT}/{site_id}/+/+/{topics.TELEMETRY}")
    edge = User(site.port, None)
    try:
        assert edge.connected.wait(5)
        notifications = f"{topics.ROOT}/{site_id}/bridge/state"
        wait_until_bridged(edge, notifications)
        first = topics.machine_topic(site_id, "line1", "press1", topics.TELEMETRY)
        assert edge.publish(first) < 0x80
        assert watcher.received(1) == [first]
        central.stop()
        # what this test is about: the site publishing while its broker knows the link
        # is down (the moment the central broker goes is a separate case, not tested)
        wait_until_bridged(edge, notifications, b"0")
        during = [topics.machine_topic(site_id, "line1", m, topics.TELEMETRY)
                  for m in ("weld1", "paint1", "pack1")]
        for topic in during:
            assert edge.publish(topic) < 0x80  # the site keeps working
        central.start()
        assert sorted(watcher.received(3)) == sorted(during)
    finally:
        edge.close()
        watcher.close()
