"""The express lane (edge/publisher.py): a command result does not wait behind the
backlog. A real SQLite outbox holding thousands of samples, the real publisher and MQTT
link, a real mosquitto and a subscriber that records what arrives in order: the result
committed after the backlog arrives before most of it, once, and its row leaves the
outbox without being sent a second time."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.mqtt import SESSION_EXPIRY_S, EdgeMqttLink
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.publisher import Publisher
from shopfloor.edge.store import Message, Store
from shopfloor.shared.enums import QueueFullPolicy
from shopfloor.shared.mqtt import Session
from shopfloor.shared.plant import Broker
from tests.harness.services import LOOPBACK, Mosquitto

BACKLOG = 5_000
SAMPLES = "express-test/telemetry"
RESULT = "express-test/cmd/result"
TIMEOUT_S = 60.0


class Recorder:
    """Every message on express-test/#, in arrival order."""

    def __init__(self, port: int) -> None:
        self.topics: list[str] = []
        self.all_in = threading.Event()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe("express-test/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._message
        self.client.connect(LOOPBACK, port)
        self.client.loop_start()

    def _message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.topics.append(message.topic)
        if len(self.topics) >= BACKLOG + 1:
            self.all_in.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_a_command_result_overtakes_the_backlog_once(tmp_path: Path,
                                                      mosquitto: Mosquitto) -> None:
    recorder = Recorder(mosquitto.port)
    assert recorder.subscribed.wait(TIMEOUT_S)
    store = Store(tmp_path / "outbox.sqlite3", 100_000, QueueFullPolicy.DROP_OLDEST)

    async def main() -> None:
        metrics = EdgeMetrics()
        outbox = Outbox(store, metrics)
        for n in range(BACKLOG):  # the backlog: committed before the broker is reached
            outbox.put(Message(SAMPLES, b'{"seq": %d}' % n, sample=True))
        await outbox.commit()
        link = EdgeMqttLink(Broker(host=LOOPBACK, port=mosquitto.port),
                            Session("express-test", expiry_s=SESSION_EXPIRY_S, inflight=8),
                            backoff_max_s=1)
        publisher = Publisher(outbox, link, 8, metrics)
        outbox.put(Message(RESULT, b'{"id": "c1", "status": "done"}'), urgent=True)
        await outbox.commit()  # committed after every sample of the backlog
        tasks = [asyncio.create_task(t()) for t in (link.run, publisher.run, outbox.run)]
        try:
            async with asyncio.timeout(TIMEOUT_S):
                # until the outbox is empty: every PUBACKed row deleted, the result's too
                while not recorder.all_in.is_set() or store.fetch(0, 1):
                    await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        recorder.close()
        store.close()
    assert recorder.topics.count(RESULT) == 1  # once: its row was not sent again
    assert recorder.topics.index(RESULT) < BACKLOG // 10  # ahead of the backlog
    assert recorder.topics.count(SAMPLES) == BACKLOG
