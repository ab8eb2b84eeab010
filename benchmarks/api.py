"""Control API benchmark: `./dev.sh bench api [--commands N] [--seconds S]`.

Runs mosquitto, InfluxDB, the simulator (`shopfloor sim`), the edge agent
(`shopfloor edge`) and the API (`shopfloor api`), each its own process, on loopback, and
measures from this process with one keep-alive HTTP client:

1. control round trip: POST setpoint -> API -> MQTT cmd -> edge -> Modbus write and
   read-back -> cmd/result -> API -> HTTP answer, sequential, p50/p90/p99/max;
2. read throughput (requests/s) of the live state of one machine (from memory), with 1
   and 4 concurrent clients;
3. read throughput of a one-hour history query (1 Hz telemetry written beforehand):
   one point raw (3,600 rows) and all numeric points in 1-minute means (60 rows).

Prints a table. Needs mosquitto and influxd (apt), like the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

from shopfloor.shared import schema
from tests.api.harness import create_database, make_keys, plant_data
from tests.harness.services import InfluxDB, Mosquitto

BIN = [sys.executable, "-m", "shopfloor.cli"]
STAND_IN = "solo1"  # answered at once by an edge stand-in: the API's and broker's share


class NoDelayMosquitto(Mosquitto):
    """The test broker with `set_tcp_nodelay true`: without it, mosquitto's Nagle delay
    adds tens of ms to every small command and result (measured: p50 47 ms vs 6 ms)."""

    def command(self) -> list[str]:
        command = super().command()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(conf.read_text() + "set_tcp_nodelay true\n")
        return command


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def start(name: str, args: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process
    env = {**os.environ, "SHOPFLOOR_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([*BIN, *args], stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def round_trips(client: httpx.Client, count: int, split: list[float] | None = None,
                machine: str = "press1") -> list[float]:
    """Sequential setpoints; latency of each in ms (all must be done). `split` gets, per
    command, the ms from the API sending it to the edge stamping its result."""
    out = []
    for i in range(count):
        started = time.perf_counter()
        r = client.post(f"/api/v1/machines/{machine}/setpoint",
                        json={"point": "speed_pct", "value": 20 + i % 100})
        elapsed = (time.perf_counter() - started) * 1000
        if r.status_code != 200 or r.json()["commands"][0]["readback"] != 20 + i % 100:
            raise SystemExit(f"round trip {i} failed: {r.status_code} {r.text[:200]}")
        out.append(elapsed)
        if split is not None:
            command = r.json()["commands"][0]
            sent = dt.datetime.fromisoformat(command["requested_at"])
            stamped = dt.datetime.fromisoformat(command["completed_at"])
            split.append((stamped - sent).total_seconds() * 1000)
    return out


def throughput(url: str, key: str, path: str, params: dict[str, Any], seconds: float,
               clients: int) -> float:
    """Requests/s of GET path with `clients` threads, each its own keep-alive client."""
    counts = [0] * clients
    stop_at = time.monotonic() + seconds

    def worker(n: int) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}) as client:
            while time.monotonic() < stop_at:
                r = client.get(path, params=params)
                if r.status_code != 200:
                    raise SystemExit(f"{path}: {r.status_code} {r.text[:200]}")
                counts[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    begun = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - begun)


def write_hour(influx_url: str, database: str, site: str, end: dt.datetime) -> None:
    """One hour of 1 Hz telemetry for press1 (as the collector writes it)."""
    tags = {"site": site, "line": "line1", "machine": "press1"}
    end_ms = int(end.timestamp() * 1000)
    lines = [schema.line(schema.TELEMETRY, tags, {
        "state": 1, "total_count": i // 2, "reject_count": i // 40, "product": 1,
        "speed_pct": 100, "alarm_code": 0, "temperature": 40 + (i % 60) / 10,
        "power": 12.5 + (i % 7), "energy": 1000 + i / 1000, "cycle_time": 2.0,
        schema.SEQ_FIELD: i}, end_ms - (3600 - i) * 1000) for i in range(3600)]
    r = httpx.post(f"{influx_url}/write", params={"db": database, "precision": "ms"},
                   content="\n".join(x for x in lines if x))
    r.raise_for_status()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev.sh bench api")
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp_name:
        run(Path(tmp_name), args.commands, args.seconds)


def run(tmp: Path, commands: int, seconds: float) -> None:
    broker, influx = NoDelayMosquitto(tmp / "mosquitto"), InfluxDB(tmp / "influxdb")
    broker.start()
    influx.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        keys = make_keys()
        data = plant_data(tmp, broker.port, influx.url, keys, timeout_s=5.0)
        data["agents"][0]["machines"].remove(STAND_IN)  # answered by the stand-in
        plant_file = tmp / "plant.yaml"
        plant_file.write_text(yaml.safe_dump(data))
        site, database = data["site"]["id"], data["database"]["database"]
        create_database(influx.url, database)
        url = f"http://127.0.0.1:{data['api']['port']}"
        procs += [start("sim", ["sim", str(plant_file)], tmp),
                  start("edge", ["edge", str(plant_file), "--agent", "edge1"], tmp),
                  start("api", ["api", str(plant_file)], tmp)]
        procs.append(subprocess.Popen(  # an edge stand-in, its own process
            [sys.executable, "-m", "tests.api.harness", str(broker.port), site, STAND_IN],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with httpx.Client(base_url=url, headers={"X-API-Key": keys["admin"]},
                          timeout=30) as client:
            wait_until(lambda: client.get("/api/v1/machines/press1/state").json()["values"],
                       60, "edge polling the simulator")
            report(client, url, keys["admin"], influx.url, database, site, commands, seconds)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(20)
        influx.stop()
        broker.stop()


def report(client: httpx.Client, url: str, key: str, influx_url: str, database: str,
           site: str, commands: int, seconds: float) -> None:
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs; other processes distort these figures)")
    round_trips(client, 20)  # warm-up
    to_edge: list[float] = []
    latencies = round_trips(client, commands, to_edge)
    print(f"control round trip (setpoint, {commands} sequential, HTTP -> edge -> Modbus "
          "write + read-back -> HTTP):")
    print(f"  p50 {percentile(latencies, 0.5):.2f} ms   p90 {percentile(latencies, 0.9):.2f} ms"
          f"   p99 {percentile(latencies, 0.99):.2f} ms   max {max(latencies):.2f} ms   "
          f"mean {statistics.fmean(latencies):.2f} ms")
    print(f"  of which API send -> edge result stamped: p50 {percentile(to_edge, 0.5):.2f} ms"
          f"   p99 {percentile(to_edge, 0.99):.2f} ms (same clock: one machine)")
    round_trips(client, 20, machine=STAND_IN)
    bare = round_trips(client, commands, machine=STAND_IN)
    print(f"API + broker only (edge stand-in answering at once, no Modbus), {commands} "
          f"sequential:\n  p50 {percentile(bare, 0.5):.2f} ms   p90 {percentile(bare, 0.9):.2f} ms"
          f"   p99 {percentile(bare, 0.99):.2f} ms   max {max(bare):.2f} ms")
    state = "/api/v1/machines/press1/state"
    for clients in (1, 4):
        rate = throughput(url, key, state, {}, seconds, clients)
        print(f"live state GET ({clients} client(s)): {rate:,.0f} requests/s")
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    write_hour(influx_url, database, site, end)
    window = {"start": (end - dt.timedelta(hours=1)).isoformat(), "end": end.isoformat()}
    history = "/api/v1/machines/press1/history"
    raw = {**window, "point": "temperature", "limit": 10_000}
    rows = len(client.get(history, params=raw).json()["rows"])
    rate = throughput(url, key, history, raw, seconds, 1)
    print(f"history, 1 h raw, 1 point ({rows} rows, 1 client): {rate:,.1f} requests/s")
    agg = {**window, "interval_s": 60, "aggregation": "mean"}
    rows = len(client.get(history, params=agg).json()["rows"])
    for clients in (1, 4):
        rate = throughput(url, key, history, agg, seconds, clients)
        print(f"history, 1 h in 1-min means, all numeric points ({rows} rows, "
              f"{clients} client(s)): {rate:,.1f} requests/s")
