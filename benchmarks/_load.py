"""Load and limits shared by the collector and chain benchmarks: the message shape (one
telemetry message of 20 values per machine per poll, JSON per the contract), publisher
processes (simulated edges at QoS 1), and the two limits of the parts we did not write:
mosquitto's QoS 1 delivery rate to one paho subscriber, and InfluxDB's own ingest rate
for pre-built line protocol."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from shopfloor.shared import topics
from tests.harness.services import InfluxDB, Mosquitto

SITE = "bench"
POINTS = 20


# ---------------------------------------------------------------- message shape
def machine_values(machine: dict[str, Any], seq: int) -> dict[str, Any]:
    """Values of the machine's points for one poll, typed like the edge publishes them."""
    values: dict[str, Any] = {}
    for p in machine["points"]:
        kind = p.get("type", "uint16")
        scaled = p.get("scale", 1) != 1 or p.get("offset", 0) != 0
        if kind == "bool":
            values[p["name"]] = seq % 2 == 0
        elif kind == "string":
            values[p["name"]] = f"WO{seq % 1000}"
        elif kind.startswith("float") or scaled:
            values[p["name"]] = round(20.0 + (seq % 1000) * 0.01, 2)
        else:
            values[p["name"]] = seq % 30000
    return values


def payload(machine: dict[str, Any], seq: int, now: float) -> bytes:
    ts = dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds")
    return json.dumps({"v": 1, "ts": ts.replace("+00:00", "Z"), "seq": seq,
                       "values": machine_values(machine, seq)}).encode()


# ---------------------------------------------------------------- publisher process
def publisher_main(port: int, plant: dict[str, Any], machine_ids: list[str], rate: float,
                   count: int, client_id: str, go: Any, results: Any) -> None:
    """Publish `count` messages round-robin over machines at `rate` msg/s (0 = as fast
    as possible) at QoS 1; report (sent, seconds) once every PUBACK is in."""
    from paho.mqtt.client import CallbackAPIVersion, Client
    from paho.mqtt.enums import MQTTProtocolVersion

    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(100)
    acked = [0]
    client.on_publish = lambda *a: acked.__setitem__(0, acked[0] + 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    machines = [(topics.machine_topic(SITE, plant["machines"][m]["line"], m, "telemetry"),
                 plant["machines"][m]) for m in machine_ids]
    go.wait()
    started = time.monotonic()
    for i in range(count):
        topic, machine = machines[i % len(machines)]
        if rate:
            delay = started + i / rate - time.monotonic()
            if delay > 0.005:  # publish in bursts of >= 5 ms, like edges after a poll
                time.sleep(delay)
        client.publish(topic, payload(machine, i // len(machines) + 1, time.time()), qos=1)
        while i - acked[0] > 2000:  # keep paho's unbounded queue short
            time.sleep(0.001)
    while acked[0] < count:
        time.sleep(0.005)
    results.put((count, time.monotonic() - started))
    client.disconnect()
    client.loop_stop()


def run_publishers(port: int, plant: dict[str, Any], machine_ids: list[str], processes: int,
                   rate: float, count: int, tag: str) -> list[mp.Process]:
    ctx = mp.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    procs = []
    for k in range(processes):
        mine = machine_ids[k::processes]
        p = ctx.Process(target=publisher_main, daemon=True, args=(
            port, plant, mine, rate / processes, count // processes, f"{tag}-pub{k}", go,
            results))
        p.start()
        procs.append(p)
    time.sleep(1.5)  # let them import and connect
    go.set()
    return procs


# ---------------------------------------------------------------- 1: broker limit
def broker_limit(broker: Mosquitto, plant: dict[str, Any], ids: list[str], count: int,
                 processes: int) -> float:
    from paho.mqtt.client import CallbackAPIVersion, Client
    from paho.mqtt.enums import MQTTProtocolVersion

    received = [0, 0.0, 0.0]

    def on_message(*args: Any) -> None:
        if received[0] == 0:
            received[1] = time.monotonic()
        received[0] += 1
        received[2] = time.monotonic()

    sub = Client(CallbackAPIVersion.VERSION2, client_id="bench-sub",
                 protocol=MQTTProtocolVersion.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(topics.all_of_kind(SITE, "telemetry"), qos=1)
    sub.loop_start()
    time.sleep(0.3)
    procs = run_publishers(broker.port, plant, ids, processes, 0, count, "limit")
    deadline = time.monotonic() + 120
    while received[0] < count and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in procs:
        p.join(10)
    sub.disconnect()
    sub.loop_stop()
    return received[0] * POINTS / max(1e-9, received[2] - received[1])


# ---------------------------------------------------------------- 2: database limit
def database_limit(influx: InfluxDB, plant: dict[str, Any], ids: list[str], count: int) -> float:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from shopfloor.shared import schema

    httpx.post(f"{influx.url}/query", params={"q": "CREATE DATABASE dblimit"})
    now_ms = int(time.time() * 1000) - count
    lines = []
    for i in range(count):
        m = ids[i % len(ids)]
        machine = plant["machines"][m]
        fields = {**machine_values(machine, i), schema.SEQ_FIELD: i}
        tags = {"site": SITE, "line": machine["line"], "machine": m}
        lines.append(schema.line(schema.TELEMETRY, tags, fields, now_ms + i))
    bodies = ["\n".join(lines[i:i + 1000]).encode() for i in range(0, count, 1000)]
    todo = list(bodies)
    lock = threading.Lock()

    def writer() -> None:
        with httpx.Client(timeout=30) as http:
            while True:
                with lock:
                    if not todo:
                        return
                    body = todo.pop()
                reply = http.post(f"{influx.url}/write",
                                  params={"db": "dblimit", "precision": "ms"}, content=body)
                reply.raise_for_status()

    started = time.monotonic()
    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count * POINTS / (time.monotonic() - started)
