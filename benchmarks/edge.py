"""Edge agent load: N simulated devices x 20 registers polled at 1 Hz by one agent.

    ./dev.sh bench edge --devices 1000 [--gateway | --port-per-device] [--max-in-flight 1]
                        [--seconds 30] [--warmup 10]

Starts a real mosquitto, the simulator (`shopfloor sim`, its own process) serving a
generated plant (`shopfloor generate-plant`), and one agent (`shopfloor edge`, its own
process). `--gateway` (default): 200 unit ids per port, the machines of a port behind
one shared connection (`connection.gateway`, `--max-in-flight` requests pipelined);
`--port-per-device`: one port, and one connection, per device. A subscriber in this
process records every telemetry message. Prints CPU per poll, polls/s, acknowledged/s,
polls skipped (overload shedding) and how fairly, the outbox depth over the window,
poll jitter p50/p99 (actual poll start vs schedule, from the samples' own timestamps
and the agent's histogram), the agent's CPU and RSS (psutil) and the load average (the
machine is shared: read every figure with it). Run at twice the capacity it is the
overload run: the acknowledged rate should equal the poll rate, polls shed fairly,
the outbox flat.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
import paho.mqtt.client as mqtt
import psutil
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from shopfloor.sim.generate import plant_data
from tests.harness.services import Mosquitto, free_port, wait_for_port

BIN = Path(sys.executable).with_name("shopfloor")


class Recorder:
    """Counts telemetry and keeps (machine, ts) of each sample for jitter."""

    def __init__(self, port: int, site: str) -> None:
        self.samples: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(f"shopfloor/v1/{site}/+/+/telemetry", 0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.samples.append((msg.topic, msg.payload))

    def take(self) -> list[tuple[str, bytes]]:
        with self.lock:
            out, self.samples = self.samples, []
        return out


def jitters(samples: list[tuple[str, bytes]], interval_s: float) -> list[float]:
    """Per machine: how much later than its usual phase each poll started, from the
    samples' own timestamps (a cross-check of the agent's histogram; robust to outliers:
    the phase is the machine's median, and a late poll never shifts it)."""
    by_machine: dict[str, list[float]] = defaultdict(list)
    for topic, payload in samples:
        ts = datetime.fromisoformat(json.loads(payload)["ts"]).timestamp()
        by_machine[topic.split("/")[4]].append(ts)
    out: list[float] = []
    for stamps in by_machine.values():
        first = stamps[0]
        # phase of each sample relative to the first one, wrapped to [-I/2, I/2)
        phases = [(t - first + interval_s / 2) % interval_s - interval_s / 2 for t in stamps]
        usual = statistics.median(phases)
        out.extend(max(0.0, p - usual) for p in phases)
    return out


def histogram_quantile(before: str, after: str, name: str, q: float) -> float | None:
    """Upper bound of the bucket holding quantile q of a Prometheus histogram, counting
    only the observations made between the two scrapes."""
    pattern = rf'{name}_bucket{{le="([^"]+)"}} (\S+)'
    start = {le: float(v) for le, v in re.findall(pattern, before)}
    buckets = [(float(le), float(v) - start.get(le, 0.0)) for le, v in re.findall(pattern, after)]
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    return next((le for le, count in buckets if count >= q * total), None)


def metric(metrics: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0



def start_sim(tmp: Path, data: dict[str, Any], broker_port: int, metrics_port: int,
              groups: Sequence[Sequence[str]] = ((),),
              ) -> tuple[Path, dict[str, str], IO[bytes], list[subprocess.Popen[bytes]]]:
    """Write the benchmark's plant (one agent, its state in `tmp`) and start the simulator
    serving it, one process per group of machine ids (an empty group: every machine);
    returns the plant file, the environment for the other processes, the log file they
    share and the simulator processes."""
    data["broker"] = {"host": "127.0.0.1", "port": broker_port}
    data["agents"][0].update(state_dir=str(tmp / "edge"), metrics_port=metrics_port)
    plant = tmp / "plant.yaml"
    plant.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, "SHOPFLOOR_LOG_LEVEL": "WARNING"}
    logs = open(tmp / "procs.log", "ab")  # noqa: SIM115
    sims = [subprocess.Popen([BIN, "sim", str(plant), *(["--machines", ",".join(group)]
                                                        if group else [])],
                             stdout=logs, stderr=logs, env=env)
            for group in groups]
    return plant, env, logs, sims


def free_base_port(count: int) -> int:
    """A port p such that p .. p + count - 1 are all free on loopback."""
    rng = random.Random()
    while True:
        base = rng.randint(20000, 60000 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


def holding_only(machine: dict[str, Any]) -> None:
    """Move the machine's coil, discrete input and input register points into holding
    registers after the last one, so that one read fetches every point."""
    points = machine["points"]
    end = max(p["address"] + _registers(p) for p in points if p["table"] == "holding")
    for point in points:
        if point["table"] != "holding":
            point.update(table="holding", address=end)
            end += _registers(point)


def _registers(point: dict[str, Any]) -> int:
    if point["type"] == "string":
        return -(-int(point["length"]) // 2)
    return {"uint32": 2, "int32": 2, "float32": 2, "float64": 4}.get(point["type"], 1)


def reads_per_poll(data: dict[str, Any]) -> int:
    """The Modbus reads of one poll of the first machine, as the agent plans them."""
    from shopfloor.edge.drivers.modbus.plan import plan_reads
    from shopfloor.shared.protocols.modbus import ModbusPoint

    machine = next(iter(data["machines"].values()))
    return len(plan_reads([ModbusPoint.model_validate(p) for p in machine["points"]]))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev.sh bench edge")
    parser.add_argument("--devices", type=int, default=1000)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--gateway", dest="per_port", action="store_const", const=200,
                      help="200 unit ids per port, one shared connection each (default)")
    mode.add_argument("--port-per-device", dest="per_port", action="store_const", const=1,
                      help="one port and one connection per device")
    parser.add_argument("--max-in-flight", type=int, default=1,
                        help="requests pipelined per connection (default 1)")
    parser.add_argument(
        "--map", choices=("machine", "holding"), default="machine",
        help="machine (default): the generated machine's register map, coils, a discrete "
        "input, holding and input registers: four reads per poll; holding: the same 20 "
        "points all in holding registers, one read per poll (the issue's Node-RED "
        "comparison: N devices x 20 holding registers)")
    parser.add_argument("--publish-inflight", type=int, default=None,
                        help="the agent's publish_inflight (default: the plant's default)")
    parser.add_argument("--profile", metavar="FILE",
                        help="run the agent under cProfile, stats to FILE (pstats)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for broker, simulator and agent (negative needs root): "
        "on a shared machine, measure them ahead of other work",
    )
    args = parser.parse_args(argv)
    per_port = args.per_port or 200
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        run(
            Path(tmp), args.devices, args.seconds, args.warmup, args.nice,
            per_port=per_port, max_in_flight=args.max_in_flight, profile=args.profile,
            register_map=args.map, publish_inflight=args.publish_inflight,
        )


def run(
    tmp: Path,
    devices: int,
    seconds: float,
    warmup: float,
    nice: int = 0,
    per_port: int = 200,
    max_in_flight: int = 1,
    profile: str | None = None,
    register_map: str = "machine",
    publish_inflight: int | None = None,
) -> None:
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    metrics_port = free_port()
    ports = -(-devices // per_port)
    data = plant_data(
        machines=devices, points=20, base_port=free_base_port(ports), per_port=per_port,
        site="bench",
    )
    gateway = per_port > 1
    for machine in data["machines"].values():
        machine["connection"].update(gateway=gateway, max_in_flight=max_in_flight)
        if register_map == "holding":
            holding_only(machine)
    mode = (
        f"gateway mode: {per_port} unit ids per port, {ports} shared connection(s), "
        f"max_in_flight {max_in_flight}"
        if gateway
        else f"port per device: {ports} ports and connections, max_in_flight {max_in_flight}"
    )
    mode += f", {register_map} map ({reads_per_poll(data)} read(s) per poll)"
    if publish_inflight is not None:
        data["agents"][0]["publish_inflight"] = publish_inflight
        mode += f", publish_inflight {publish_inflight}"
    plant, env, logs, (sim,) = start_sim(tmp, data, broker.port, metrics_port)
    agent: subprocess.Popen[bytes] | None = None
    try:
        last_port = data["machines"][list(data["machines"])[-1]]["connection"]["port"]
        wait_for_port(last_port, 180, server=sim)
        rec = Recorder(broker.port, "bench")
        command = [str(BIN), "edge", str(plant), "--agent", "edge1"]
        if profile:  # cProfile's own overhead inflates the CPU figures of this run
            command = [sys.executable, "-m", "cProfile", "-o", profile, *command]
        agent = subprocess.Popen(command, stdout=logs, stderr=logs, env=env)
        wait_for_port(metrics_port, 180, server=agent)
        if nice:
            for pid in (agent.pid, sim.pid, broker.proc.pid if broker.proc else None):
                if pid is not None:
                    psutil.Process(pid).nice(nice)
            print(f"niceness:           {nice} (broker, simulator, agent)")
        time.sleep(warmup)
        print(f"mode:               {mode}")
        report(
            rec, psutil.Process(agent.pid), psutil.Process(sim.pid), metrics_port, devices, seconds
        )
    finally:
        for proc in (agent, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        broker.stop()
        logs.close()


def report(
    rec: Recorder,
    agent: psutil.Process,
    sim: psutil.Process,
    metrics_port: int,
    devices: int,
    seconds: float,
) -> None:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    before = httpx.get(url, timeout=10).text
    scraped_before = time.monotonic()
    rec.take()
    cpu0, sim0, t0 = agent.cpu_times(), sim.cpu_times(), time.monotonic()
    depths = sample_depth(f"http://127.0.0.1:{metrics_port}/healthz", seconds)
    cpu1, sim1, elapsed = agent.cpu_times(), sim.cpu_times(), time.monotonic() - t0
    load = os.getloadavg()
    sim_cpu = (sim1.user + sim1.system - sim0.user - sim0.system) / elapsed * 100
    samples = rec.take()
    after = httpx.get(url, timeout=10).text
    between_scrapes = time.monotonic() - scraped_before
    cpu_s = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    cpu = cpu_s / elapsed * 100

    def delta(name: str) -> float:
        return _sum(after, name) - _sum(before, name)

    polls = delta("shopfloor_edge_polls_total")
    print(f"devices:            {devices} x 20 registers, 1 Hz, window {elapsed:.1f} s")
    print(f"polls/s (agent):    {polls / between_scrapes:.1f}  (target {devices})")
    print(f"acknowledged/s:     {delta('shopfloor_edge_published_total') / between_scrapes:.1f}")
    print(f"telemetry/s (MQTT): {len(samples) / elapsed:.1f}")
    shed = _sum_label(after, "reason", "shed") - _sum_label(before, "reason", "shed")
    late = _sum_label(after, "reason", "late") - _sum_label(before, "reason", "late")
    print(
        f"polls skipped/s:    shed {shed / between_scrapes:.1f}, late {late / between_scrapes:.1f}"
        f"; overloaded now: {metric(after, 'shopfloor_edge_overloaded'):.0f}, admission "
        f"{metric(after, 'shopfloor_edge_poll_admission_ratio'):.2f}"
    )
    print(f"fairness:           {fairness(samples, devices)}")
    jit = sorted(jitters(samples, 1.0))
    if jit:
        p50 = statistics.median(jit) * 1000
        p99 = jit[int(0.99 * (len(jit) - 1))] * 1000
        print(
            f"poll jitter:        p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            "(sample timestamps vs each machine's usual phase)"
        )
    hp50 = histogram_quantile(before, after, "shopfloor_edge_poll_jitter_seconds", 0.5)
    hp99 = histogram_quantile(before, after, "shopfloor_edge_poll_jitter_seconds", 0.99)
    print(
        f"poll jitter (hist): p50 <= {_ms(hp50)}, p99 <= {_ms(hp99)} "
        "(agent's own clock vs schedule, this window)"
    )
    per_poll = cpu_s / polls * 1e6 if polls else float("nan")
    user_share = (cpu1.user - cpu0.user) / cpu_s * 100 if cpu_s else float("nan")
    print(f"agent CPU:          {cpu:.1f} % of one core = {per_poll:.0f} us per poll "
          f"({user_share:.0f} % of it in user space)")
    print(f"simulator CPU:      {sim_cpu:.0f} % of one core")
    print(
        f"load average:       {' '.join(f'{x:.1f}' for x in load)} "
        f"({psutil.cpu_count()} cores; other processes share them)"
    )
    print(f"agent RSS:          {agent.memory_info().rss / 2**20:.0f} MiB")
    print(f"outbox depth:       {' '.join(f'{d:.0f}' for d in depths)} (every 5 s)")
    print(f"poll failures:      {delta('shopfloor_edge_poll_failures_total'):.0f}")
    print(f"dropped:            {delta('shopfloor_edge_dropped_total'):.0f}")


def sample_depth(url: str, seconds: float, every_s: float = 5.0) -> list[float]:
    """The agent's outbox depth every `every_s` over `seconds` (waits that long), from
    its /healthz: a /metrics scrape every 5 s (1,000 machines' series) would add its
    own cost to the figures; /metrics is read only before and after the window."""
    depths = []
    end = time.monotonic() + seconds
    while True:
        depths.append(float(httpx.get(url, timeout=10).json()["queue_depth"]))
        left = end - time.monotonic()
        if left <= 0:
            return depths
        time.sleep(min(every_s, left))


def fairness(samples: list[tuple[str, bytes]], devices: int) -> str:
    """Samples per machine in the window: min / median / max, and machines with none."""
    per: dict[str, int] = defaultdict(int)
    for topic, _ in samples:
        per[topic.split("/")[4]] += 1
    counts = sorted(per.values())
    silent = devices - len(per)
    if not counts:
        return "no samples"
    return (
        f"samples per machine min {counts[0]}, median {statistics.median(counts):g}, "
        f"max {counts[-1]}; machines without any: {silent}"
    )


def _sum_label(metrics: str, label: str, value: str) -> float:
    pattern = rf'^shopfloor_edge_polls_skipped_total{{[^}}]*{label}="{value}"[^}}]*}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, metrics, re.M))


def _sum(metrics: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", metrics, re.M))


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:g} ms"
