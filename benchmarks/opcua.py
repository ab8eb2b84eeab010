"""OPC UA edge load: N simulated OPC UA machines x 20 nodes, one agent, subscription mode.

    ./dev.sh bench opcua --machines 100 [--per-server 25] [--publishing 0.05]
                         [--seconds 30] [--warmup 15] [--one-sim] [--nice N]
                         [--find-max]

Starts a real mosquitto, the simulator serving a generated plant whose machines speak OPC
UA (`generate.as_opcua`: `--per-server` machines per asyncua server, each server a
`shopfloor sim --machines ...` process of its own, or all in one with `--one-sim`), and
one agent (`shopfloor edge`, its own process), every machine in subscription mode:
values sampled at 1 Hz (the simulator's analog values change every second, counters at
each cycle), published by the server every `--publishing` seconds. A subscriber in this
process records every telemetry message and its arrival time; the measured window starts
`--warmup` seconds after every machine has sent telemetry (the first values of a new
subscription carry their old source timestamps: not latency). Prints samples/s, the
agent's CPU (% of one core), the time its threads waited for a CPU while runnable (% of
the window: the scheduler's share of the latency) and its RSS, each simulator process's
CPU (a starved simulator would be measured instead of the agent), and the
source-timestamp -> MQTT latency (arrival at the subscriber minus the sample's `ts`,
which is the OPC UA source timestamp): p50, p99, max. `--find-max` doubles N from
`--machines` while p99 <= 100 ms and no machine is silent, and reports the largest N
that held. The machine is shared:
the load average is printed with every figure; `--nice -5` (root) gives the benchmark's
processes (broker, simulators, agent, the recording subscriber) more of a loaded CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks.edge import BIN, free_base_port, start_sim
from shopfloor.sim.generate import as_opcua, plant_data
from tests.harness.services import Mosquitto, free_port, wait_for_port

TARGET_P99_S = 0.100


class Arrivals:
    """Telemetry with its arrival time (wall clock, as the source timestamps are)."""

    def __init__(self, port: int, site: str) -> None:
        self.samples: list[tuple[float, str, bytes]] = []
        self.heard: set[str] = set()
        """Machines that sent telemetry (the first samples after a subscription is made
        carry each value's old source timestamp: not latency)."""
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(f"shopfloor/v1/{site}/+/+/telemetry", 0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        arrived = time.time()
        with self.lock:
            self.samples.append((arrived, msg.topic, bytes(msg.payload)))
            self.heard.add(msg.topic.split("/")[4])

    def wait_for(self, machines: int, timeout_s: float) -> None:
        """Until every machine has sent telemetry (RuntimeError after `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while len(self.heard) < machines:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.heard)} of {machines} machines sent "
                                   f"telemetry within {timeout_s:.0f} s")
            time.sleep(0.5)

    def take(self) -> list[tuple[float, str, bytes]]:
        with self.lock:
            out, self.samples = self.samples, []
        return out


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def server_groups(data: dict[str, Any]) -> list[list[str]]:
    """The machine ids of each OPC UA endpoint (one simulator process each)."""
    groups: dict[str, list[str]] = {}
    for mid, machine in data["machines"].items():
        groups.setdefault(machine["connection"]["endpoint"], []).append(mid)
    return list(groups.values())


def run(tmp: Path, machines: int, per_server: int, publishing_s: float, seconds: float,
        warmup: float, one_sim: bool = False) -> dict[str, Any]:
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    servers = -(-machines // per_server)
    data = as_opcua(plant_data(machines=machines, points=20, base_port=free_base_port(servers),
                               site="bench"), per_server, publishing_s)
    metrics_port = free_port()
    groups = server_groups(data)
    plant, env, logs, sims = start_sim(tmp, data, broker.port, metrics_port,
                                       [[]] if one_sim else groups)
    agent: subprocess.Popen[bytes] | None = None
    try:
        for group in groups:
            endpoint = data["machines"][group[0]]["connection"]["endpoint"]
            wait_for_port(int(endpoint.rsplit(":", 1)[1].strip("/")), 300)
        arrivals = Arrivals(broker.port, "bench")
        agent = subprocess.Popen([BIN, "edge", str(plant), "--agent", "edge1"], stdout=logs,
                                 stderr=logs, env=env)
        wait_for_port(metrics_port, 180)
        arrivals.wait_for(machines, 600)
        time.sleep(warmup)
        procs = [psutil.Process(p.pid) for p in (agent, *sims)]
        arrivals.take()
        cpu0, wait0, t0 = [cpu_s(p) for p in procs], runqueue_s(agent.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, wait1, t1 = [cpu_s(p) for p in procs], runqueue_s(agent.pid), time.monotonic()
        window = arrivals.take()
        rss = procs[0].memory_info().rss
    finally:
        for process in (agent, *sims):
            if process is not None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        broker.stop()
        logs.close()
    latencies, per_machine = [], dict.fromkeys(data["machines"], 0)
    for arrived, topic, payload in window:
        ts = datetime.fromisoformat(json.loads(payload)["ts"]).timestamp()
        latencies.append(arrived - ts)
        per_machine[topic.split("/")[4]] += 1
    elapsed = t1 - t0
    cpu = [round(100 * (after - before) / elapsed, 1) for before, after in zip(cpu0, cpu1,
                                                                               strict=True)]
    return {
        "machines": machines, "servers": servers, "sim_processes": len(sims),
        "publishing_s": publishing_s,
        "samples_per_s": round(len(window) / elapsed, 1),
        "silent_machines": sum(1 for n in per_machine.values() if n == 0),
        "agent_cpu_pct": cpu[0], "agent_rss_mib": round(rss / 2**20, 1),
        "agent_cpu_wait_pct": round(100 * (wait1 - wait0) / elapsed, 1),
        "sim_cpu_pct": cpu[1:],
        "latency_p50_ms": round(1000 * quantile(latencies, 0.50), 1),
        "latency_p99_ms": round(1000 * quantile(latencies, 0.99), 1),
        "latency_max_ms": round(1000 * max(latencies, default=float("nan")), 1),
        "latency_mean_ms": round(1000 * statistics.fmean(latencies), 1) if latencies else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def runqueue_s(pid: int) -> float:
    """Seconds the process's threads have waited for a CPU while runnable (Linux
    schedstat): when it grows like the CPU used, the latency's tail is the scheduler's."""
    total = 0.0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def holds(result: dict[str, Any]) -> bool:
    return result["latency_p99_ms"] <= 1000 * TARGET_P99_S and result["silent_machines"] == 0


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev.sh bench opcua")
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--per-server", type=int, default=25,
                        help="machines per simulated OPC UA server (default 25)")
    parser.add_argument("--publishing", type=float, default=0.05,
                        help="publishing interval, s (default 0.05; sampling stays 1 Hz)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--one-sim", action="store_true",
                        help="serve every server from one simulator process (default: a "
                             "process per server, so that the agent is what is measured)")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of this process and so of every process it starts "
                             "(negative needs root)")
    parser.add_argument("--find-max", action="store_true",
                        help="double N while p99 <= 100 ms and no machine is silent")
    args = parser.parse_args(argv)
    if args.nice:
        psutil.Process().nice(args.nice)  # the processes it starts inherit it
    machines, best = args.machines, None
    while True:
        with tempfile.TemporaryDirectory(prefix="bench-opcua-") as tmp:
            result = run(Path(tmp), machines, args.per_server, args.publishing, args.seconds,
                         args.warmup, args.one_sim)
        print(json.dumps({**result, "nice": args.nice, "holds": holds(result)}), flush=True)
        if not args.find_max or not holds(result):
            break
        best, machines = machines, machines * 2
    if args.find_max:
        print(json.dumps({"largest_n_that_held": best}))


if __name__ == "__main__":
    main(sys.argv[1:])
