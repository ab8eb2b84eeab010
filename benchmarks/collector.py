"""Collector benchmark: `./dev.sh bench collector [--machines N] [--seconds S] ...`.

Measures, in one run on this machine, with one message shape (one telemetry message of
~20 values per machine per poll, JSON per the contract):

1. mosquitto's QoS 1 delivery rate to one paho subscriber (publishers in separate
   processes, QoS 1; the subscriber acknowledges as paho does by default);
2. InfluxDB's own ingest rate for pre-built line protocol POSTed to /write (batches of
   1,000 lines, two concurrent writers);
3. the collector end to end: simulated edges (separate publisher processes, QoS 1) ->
   mosquitto -> `shopfloor collector` process(es) -> InfluxDB, as values/s published,
   acknowledged and stored, with 1 collector (with and without the live KPI sink) and
   with 2 sharded by topic filter (lines); and one collector draining a backlog queued
   in its session while no publisher runs (its own capacity on this machine);
4. end-to-end latency p50/p99 (sample ts -> queryable with InfluxQL) at a paced load,
   from a probe machine whose samples are polled for in InfluxDB every 25 ms.

Limits and flat-out runs are repeated (`--repeat`, default 3), interleaved; the table
gives medians and ranges. The message shape, the publishers and the two limits live in
`benchmarks/_load.py` (shared with the chain benchmark).

Prints a table. Needs mosquitto and influxd (apt), like the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks._load import POINTS, SITE, broker_limit, database_limit, payload, run_publishers
from shopfloor.shared import topics
from shopfloor.sim.generate import plant_data
from tests.harness.services import InfluxDB, Mosquitto, free_port

LINES = 4


# ---------------------------------------------------------------- 3/4: collector
def collector_procs(plant: dict[str, Any], workdir: Path, shards: int, database: str,
                    kpi: bool = True) -> list[tuple[subprocess.Popen[bytes], int]]:
    procs = []
    line_ids = [line["id"] for line in plant["lines"]]
    for k in range(shards):
        mine = line_ids[k::shards]
        data = json.loads(json.dumps(plant))
        port = free_port()
        data["database"]["database"] = database
        data["collector"] = {
            "client_id": collector_id(database, k), "metrics_port": port,
            "topic_filter": ",".join(topics.machine_topic(SITE, line, "+", "telemetry")
                                     for line in mine),
        }
        path = workdir / f"plant-{database}-{k}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        log = open(workdir / f"collector-{database}-{k}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "shopfloor.cli", "collector", str(path),
                                 "--log-level", "WARNING", "--kpi" if kpi else "--no-kpi"],
                                stdout=log, stderr=log)
        procs.append((proc, port))
    for _, port in procs:
        wait_healthy(port)
    return procs


def stop_collectors(broker: Mosquitto, collectors: list[tuple[subprocess.Popen[bytes], int]],
                    database: str) -> None:
    """Stop them and end their persistent sessions: a session left behind keeps its
    subscriptions, and the broker would go on queueing every later run's messages for
    it (work that would burden the runs that follow)."""
    from paho.mqtt.client import CallbackAPIVersion, Client
    from paho.mqtt.enums import MQTTProtocolVersion

    for proc, _ in collectors:
        proc.terminate()
        proc.wait(20)
    for k in range(len(collectors)):
        client = Client(CallbackAPIVersion.VERSION2, client_id=collector_id(database, k),
                        protocol=MQTTProtocolVersion.MQTTv5)
        client.connect("127.0.0.1", broker.port, clean_start=True)  # expiry 0: ends at close
        client.loop_start()
        deadline = time.monotonic() + 5
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        client.disconnect()
        client.loop_stop()


def collector_id(database: str, k: int) -> str:
    return f"bench-collector-{database}-{k}"


def wait_healthy(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"collector on metrics port {port} not healthy")


def metric(port: int, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name)


def values_written(port: int) -> float:
    """From /healthz: a few totals, far cheaper for the collector than a /metrics scrape
    (which renders every per-machine series)."""
    return float(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
                 ["values_written"])


class Probe:
    """Publishes a probe machine's samples (ts = now) every 50 ms and polls InfluxDB every
    25 ms for the last stored seq: latency = first seen - sample ts (+0-25 ms)."""

    def __init__(self, broker: Mosquitto, influx: InfluxDB, plant: dict[str, Any],
                 machine_id: str, database: str) -> None:
        from paho.mqtt.client import CallbackAPIVersion, Client
        from paho.mqtt.enums import MQTTProtocolVersion

        self.machine = plant["machines"][machine_id]
        self.machine_id = machine_id
        self.topic = topics.machine_topic(SITE, self.machine["line"], machine_id, "telemetry")
        self.influx, self.database = influx, database
        self.sent: dict[int, float] = {}
        self.last_info: Any = None
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self.client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self._threads = [threading.Thread(target=self._publish, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]
        for t in self._threads:
            t.start()

    def _publish(self) -> None:
        seq = 10**6
        while not self._stop.wait(0.05):
            seq += 1
            now = time.time()
            self.sent[seq] = now
            self.last_info = self.client.publish(self.topic, payload(self.machine, seq, now),
                                                 qos=1)

    def _poll(self) -> None:
        seen = 0
        q = (f"SELECT last(\"_seq\") FROM telemetry WHERE machine = '{self.machine_id}' "
             f"AND time > now() - 1h")
        with httpx.Client(timeout=5) as http:
            while not self._stop.wait(0.025):
                reply = http.get(f"{self.influx.url}/query",
                                 params={"db": self.database, "q": q}).json()
                series = reply["results"][0].get("series")
                if not series:
                    continue
                last = int(series[0]["values"][0][1])
                now = time.time()
                for seq in range(max(seen + 1, 10**6 + 1), last + 1):
                    if seq in self.sent:
                        self.latencies.append(now - self.sent[seq])
                seen = max(seen, last)

    def stop(self) -> tuple[float, float, int]:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        if self.last_info is not None:
            self.last_info.wait_for_publish(10)  # every probe sample reached the broker
        self.client.disconnect()
        self.client.loop_stop()
        if not self.latencies:
            return float("nan"), float("nan"), 0
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return statistics.median(ordered), p99, len(ordered)


def collector_run(broker: Mosquitto, influx: InfluxDB, plant: dict[str, Any], ids: list[str],
                  workdir: Path, shards: int, rate: float, seconds: float,
                  processes: int, kpi: bool = True, tag: str = "") -> dict[str, float]:
    """Publish `rate` msg/s (0 = flat out) for `seconds`; return stored values/s and the
    probe's latency."""
    database = f"bench_{shards}_{int(rate)}_{int(kpi)}{tag}"
    collectors = collector_procs(plant, workdir, shards, database, kpi)
    count = int((rate or 6000) * seconds)
    load_ids, probe_id = ids[:-1], ids[-1]
    # The latency probe polls InfluxDB 40 times a second: only at a paced load, so that
    # flat-out runs measure the collector, not the benchmark's own overhead.
    probe = Probe(broker, influx, plant, probe_id, database) if rate else None
    pubs = run_publishers(broker.port, plant, load_ids, processes, rate, count, database)
    started = time.monotonic()
    expected = count * POINTS
    written = 0.0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        written = sum(values_written(p) for _, p in collectors)
        if written >= expected:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    p50, p99, probes = probe.stop() if probe is not None else (math.nan, math.nan, 0)
    for p in pubs:
        p.join(10)
    time.sleep(0.5)  # the last probe samples are on their way from the broker
    settle = time.monotonic() + 10
    while time.monotonic() < settle and sum(
            metric(p, "shopfloor_collector_pending_unacked") for _, p in collectors):
        time.sleep(0.1)
    pending = sum(metric(p, "shopfloor_collector_pending_unacked") for _, p in collectors)
    lost = sum(metric(p, "shopfloor_collector_lost_samples") for _, p in collectors)
    stored = influx.query("SELECT count(\"_seq\") FROM telemetry", database=database)
    stop_collectors(broker, collectors, database)
    return {
        "values_per_s": written / elapsed, "p50": p50, "p99": p99, "probes": probes,
        "stored": stored[0]["values"][0][1] if stored else 0,
        "published": count + (len(probe.sent) if probe is not None else 0),
        "pending": pending, "lost": lost,
    }


# ---------------------------------------------------------------- main
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev.sh bench collector")
    parser.add_argument("--machines", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each limit and flat-out collector measurement")
    parser.add_argument("--paced-rate", type=float, default=5000.0,
                        help="msg/s of the latency run (x20 values)")
    args = parser.parse_args(argv)
    plant = plant_data(machines=args.machines, points=POINTS, lines=LINES, site=SITE)
    ids = list(plant["machines"])
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        workdir = Path(tmp)
        broker, influx = Mosquitto(workdir / "mosquitto"), InfluxDB(workdir / "influxdb")
        broker.start()
        influx.start()
        plant["broker"] = {"host": "127.0.0.1", "port": broker.port}
        plant["database"] = {"url": influx.url, "database": "bench"}
        try:
            rows = run_all(broker, influx, plant, ids, workdir, args)
        finally:
            broker.stop()
            influx.stop()
    print_table(rows, args)


def drain_run(broker: Mosquitto, influx: InfluxDB, plant: dict[str, Any], ids: list[str],
              workdir: Path, count: int, processes: int) -> float:
    """The collector's own capacity: messages queued in its session while it is away,
    then drained with no publisher competing for the CPU (values/s, start-up included)."""
    database = "bench_drain"
    for proc, _ in collector_procs(plant, workdir, 1, database):  # creates the session
        proc.terminate()
        proc.wait(20)
    for p in run_publishers(broker.port, plant, ids, processes, 0, count, database):
        p.join(120)
    started = time.monotonic()
    collectors = collector_procs(plant, workdir, 1, database)
    port = collectors[0][1]
    deadline = started + 300
    while values_written(port) < count * POINTS:
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    elapsed = time.monotonic() - started
    stop_collectors(broker, collectors, database)
    return count * POINTS / elapsed


def run_all(broker: Mosquitto, influx: InfluxDB, plant: dict[str, Any], ids: list[str],
            workdir: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Limits and flat-out collector runs are repeated `--repeat` times, interleaved
    (limit, then each collector variant, then again), so that drift in the machine's
    load touches all of them alike; the table gives medians and ranges."""
    n = int(6000 * args.seconds)
    rows: list[tuple[str, str]] = []
    variants = ((1, False), (1, True), (2, True))
    limits: list[float] = []
    flat: dict[tuple[int, bool], list[dict[str, float]]] = {v: [] for v in variants}
    for k in range(args.repeat):
        limits.append(broker_limit(broker, plant, ids, n, args.publishers))
        for shards, kpi in variants:
            flat[(shards, kpi)].append(collector_run(
                broker, influx, plant, ids, workdir, shards, 0, args.seconds,
                args.publishers, kpi, tag=f"r{k}"))
    mqtt_limit = statistics.median(limits)
    rows.append(("mosquitto QoS 1 -> one paho subscriber", spread(limits, "values/s")))
    db_limit = database_limit(influx, plant, ids, n)
    rows.append(("InfluxDB /write, line protocol, 2 writers", f"{db_limit:,.0f} values/s"))
    slower = min(mqtt_limit, db_limit)
    for (shards, kpi), runs in flat.items():
        rates = [r["values_per_s"] for r in runs]
        rows.append((f"collector x{shards}{'' if kpi else ' --no-kpi'}, publishers flat out",
                     f"{spread(rates, 'values/s stored')}"
                     f" = {100 * statistics.median(rates) / slower:.0f} % of the slower limit;"
                     f" stored {sum(r['stored'] for r in runs):.0f}"
                     f"/{sum(r['published'] for r in runs):.0f} msgs,"
                     f" lost {sum(r['lost'] for r in runs):.0f}"))
    drained = drain_run(broker, influx, plant, ids, workdir, n, args.publishers)
    rows.append(("collector x1, draining a backlog (no publishers)",
                 f"{drained:,.0f} values/s stored"))
    for shards, rate in ((1, args.paced_rate / 2), (2, args.paced_rate)):
        r = collector_run(broker, influx, plant, ids, workdir, shards, rate, args.seconds,
                          args.publishers)
        rows.append((f"collector x{shards}, paced at {rate * POINTS:,.0f} values/s",
                     f"{r['values_per_s']:,.0f} values/s stored; latency p50 {r['p50']:.3f} s,"
                     f" p99 {r['p99']:.3f} s ({r['probes']} probes);"
                     f" stored {r['stored']}/{r['published']}"))
    return rows


def spread(values: list[float], unit: str) -> str:
    """Median, and the range when there are several runs."""
    text = f"{statistics.median(values):,.0f} {unit}"
    if len(values) > 1:
        text += f" (median of {len(values)}: {min(values):,.0f}-{max(values):,.0f})"
    return text


def print_table(rows: list[tuple[str, str]], args: argparse.Namespace) -> None:
    print(f"\ncollector benchmark: {args.machines} machines x {POINTS} values per message,"
          f" {args.publishers} publisher processes, {args.seconds:g} s of load per run;"
          f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    width = max(len(k) for k, _ in rows)
    print("-" * (width + 50))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("targets: >= 100,000 values/s, >= 80 % of the slower limit, p99 <= 1 s")
