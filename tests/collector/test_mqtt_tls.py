"""The collector's subscriber over TLS with a client certificate: its fast client
(a buffered socket around the TLS socket, the PUBLISH fast path) receives every message
in order, and its acks reach the broker: after a restart of its persistent session,
exactly what it did not acknowledge comes again."""

from __future__ import annotations

import queue

from shopfloor.collector.mqtt import Ack, Subscriber
from shopfloor.shared import topics
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.mqtt import BrokerThread, Session
from tests.harness.plants import example_data
from tests.harness.tls import tls_broker_settings

TIMEOUT_S = 60.0
COUNT = 500
HALF = 250


class Taken:
    """A receiver that keeps (topic, payload, ack) of every message."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[str, bytes, Ack]] = queue.Queue()

    def message(self, topic: str, payload: bytes, ack: Ack, received_at: float) -> None:
        self.messages.put((topic, payload, ack))

    def poll(self) -> float:
        return 1.0

    def flush(self) -> None:
        pass


def test_the_collector_receives_and_acks_over_tls(tls_mosquitto, pki, unique_site) -> None:
    settings = tls_broker_settings(tls_mosquitto.port, pki)
    data = example_data()
    data["site"]["id"] = unique_site
    data["broker"] = settings.model_dump(mode="json")
    plant = parse_plant(data)
    taken = Taken()
    subscriber = Subscriber(plant, taken)
    sender = BrokerThread(settings, Session(f"{unique_site}-sender"), name="test-sender")
    topic = topics.machine_topic(unique_site, "line1", "press1", topics.TELEMETRY)
    again = None
    try:
        subscriber.start()
        assert subscriber.subscribed.wait(TIMEOUT_S)
        assert sender.start(TIMEOUT_S)
        for i in range(COUNT):
            sender.client.publish(topic, b"p%d" % i, qos=1)
        got = [taken.messages.get(timeout=TIMEOUT_S) for _ in range(COUNT)]
        assert [(t, p) for t, p, _ in got] == [(topic, b"p%d" % i) for i in range(COUNT)]
        assert subscriber.client.fast_path_hits >= COUNT
        subscriber.ack([ack for _, _, ack in got[:HALF]])
        subscriber.stop()  # sends the acks handed over, then DISCONNECT
        retaken = Taken()
        again = Subscriber(plant, retaken)
        again.start()
        redelivered = [retaken.messages.get(timeout=TIMEOUT_S)[1] for _ in range(COUNT - HALF)]
        assert redelivered == [b"p%d" % i for i in range(HALF, COUNT)]
    finally:
        sender.stop()
        subscriber.stop()
        if again is not None:
            again.stop()
