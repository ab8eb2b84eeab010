"""Test helpers for the collector: a real paho publisher at QoS 1 (an honest stand-in
for an edge agent), contract payloads built from the plant, and InfluxDB read-back."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import CallbackAPIVersion, Client, MQTTMessage
from paho.mqtt.enums import MQTTProtocolVersion

from shopfloor.shared import topics
from shopfloor.shared.contract import StatePayload, Telemetry
from shopfloor.shared.enums import DataType, MachineState
from shopfloor.shared.plant import Machine, Plant

T0 = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)


def value_for(machine: Machine, point_name: str, seq: int) -> Any:
    """A deterministic engineering value of the point's type for sample `seq`."""
    point = machine.point(point_name)
    assert point is not None
    if point.type is DataType.BOOL:
        return seq % 2 == 0
    if point.type is DataType.STRING:
        return f"WO-{seq}"
    if point.type is DataType.DATETIME:  # as the edge publishes it: ISO 8601, UTC
        return (T0 + dt.timedelta(seconds=seq)).isoformat()
    if point.type.is_integer and point.scale == 1 and point.offset == 0:
        return seq * 7 % 60000
    return round(seq * 0.25 + 0.5, 3)


def telemetry(plant: Plant, machine_id: str, seq: int, ts: dt.datetime | None = None) -> Telemetry:
    machine = plant.machines[machine_id]
    values = {p.name: value_for(machine, p.name, seq) for p in machine.points}
    return Telemetry(ts=ts or T0 + dt.timedelta(seconds=seq), seq=seq, values=values)


def state(state: MachineState, since: dt.datetime, reason: str | None = None) -> StatePayload:
    return StatePayload(ts=since, state=state, reason=reason, code=1, product="A", since=since)


def telemetry_topic(plant: Plant, machine_id: str) -> str:
    line = plant.machines[machine_id].line
    return topics.machine_topic(plant.site.id, line, machine_id, topics.TELEMETRY)


class Publisher:
    """A paho publisher (QoS 1); `publish` waits for the broker's PUBACK."""

    def __init__(self, port: int, client_id: str = "") -> None:
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv5)
        self.client.max_inflight_messages_set(50)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def publish_many(self, items: list[tuple[str, bytes]]) -> None:
        infos = [self.client.publish(t, p, qos=1) for t, p in items]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Listener:
    """Subscribes to a filter and keeps what arrives (e.g. dead letters)."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.messages: list[MQTTMessage] = []
        self.client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()
        time.sleep(0.2)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0, every_s: float = 0.2) -> Any:
    """Poll until `check()` is truthy; return its value or raise with the last one."""
    deadline = time.monotonic() + timeout_s
    value = check()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last: {value!r})")
        time.sleep(every_s)
        value = check()
    return value


def seqs_stored(influx: Any, database: str, machine: str) -> list[int]:
    """All `_seq` values stored for a machine, in time order (duplicates would show)."""
    series = influx.query(
        f"SELECT \"_seq\" FROM telemetry WHERE machine = '{machine}'", database=database
    )
    return [int(row[1]) for s in series for row in s["values"]]


class Stream:
    """Publishes telemetry for `machines` from a thread: seq 1, 2, ... per machine, one
    message per machine every `period_s`, at QoS 1 from a persistent paho session that
    reconnects by itself (paho keeps unacknowledged messages and resends them)."""

    def __init__(self, plant: Plant, port: int, machines: list[str], period_s: float) -> None:
        import threading

        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.plant, self.machines, self.period_s = plant, machines, period_s
        self.sent = 0
        self._stop = threading.Event()
        self.client = Client(CallbackAPIVersion.VERSION2, client_id=f"stream-{plant.site.id}",
                             protocol=MQTTProtocolVersion.MQTTv5)
        self.client.max_inflight_messages_set(50)
        self.client.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.acked = 0  # PUBACKs received (paho resends unacknowledged messages on reconnect)
        self.client.on_publish = self._on_publish
        self.client.loop_start()
        self.published = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            for machine in self.machines:
                payload = telemetry(self.plant, machine, seq).to_json()
                self.client.publish(telemetry_topic(self.plant, machine), payload, qos=1)
                self.published += 1
            self.sent = seq
            next_at += self.period_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _on_publish(self, *args: Any) -> None:
        self.acked += 1

    def stop(self, timeout_s: float = 30.0) -> int:
        """Stop publishing; wait until the broker acknowledged all; return the last seq."""
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + timeout_s
        while self.acked < self.published:
            if time.monotonic() > deadline:
                raise AssertionError("the broker did not acknowledge every publish")
            time.sleep(0.1)
        self.client.disconnect()
        self.client.loop_stop()
        return self.sent


def metric(port: int, name: str) -> float:
    """Sum of a metric's samples over labels, from a running collector's /metrics."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text)
               for s in f.samples if s.name == name)
