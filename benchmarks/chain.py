"""The whole chain under plant-scale load, on this machine:

    ./dev.sh bench chain --machines 1000 --duration 60 [--agents 4] [--warmup 15]

simulator (`shopfloor sim`, N machines x 20 points) -> edge agents (`shopfloor edge`,
1 Hz polls) -> mosquitto -> `shopfloor collector` -> InfluxDB, plus `shopfloor api` and
`shopfloor alarms` with every rule type on every machine (`ALL_RULES`; `--no-alarms`
leaves it out), every one its own process. Prints, from one run:

1. the limits of the parts we did not write, measured first on the same services:
   mosquitto QoS 1 publish -> subscribe and InfluxDB's direct line-protocol ingest
   (`benchmarks.collector`), the simulator's Modbus request rate (`benchmarks.sim`,
   pipelined), each converted to values/s;
2. the chain over `--duration` seconds after `--warmup`: values/s stored (collector's
   counter), end-to-end latency p50/p99 (the sample's poll timestamp -> first seen by an
   InfluxQL query polled every 100 ms, on probe machines), CPU and RSS per component
   (psutil), edge queue depth; then the edges stop (SIGTERM flushes), and lost (seq gaps)
   and duplicated samples are counted in InfluxDB against each edge's last seq;
3. the ratio of the chain's stored rate to the slowest limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from benchmarks._load import POINTS, broker_limit, database_limit
from benchmarks.collector import metric
from benchmarks.sim import _free_base_port, _load
from shopfloor.edge.drivers.modbus.plan import plan_reads
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import Plant
from shopfloor.sim.generate import plant_data
from tests.harness.processes import ComponentProcess, health_url, sim_healthy
from tests.harness.services import InfluxDB, Mosquitto, free_port

PER_PORT = 200
PROBES = 10
ALL_RULES: dict[str, dict[str, Any]] = {
    "machine_stopped": {"enabled": True, "after_s": 30},
    "agent_offline": {"enabled": True},
    "downtime_unclassified": {"enabled": True, "after_s": 60},
    "coverage_low": {"enabled": True, "below_pct": 80, "after_s": 0},
    "shift_kpi_low": {"enabled": True, "kpi": "oee", "below_pct": 60, "after_shift_s": 0},
    "buffer_wip": {"enabled": True, "min_parts": 0, "max_parts": 50},
    "collector_lag": {"enabled": True, "max_lag_s": 30},
    "dead_letters": {"enabled": True},
}
"""Every rule type, on every machine (buffer_wip: every station with a buffer after it)
and every collector: the alarm component's full load (docs/alarms.md). Short on-delays,
so that it also publishes and stores transitions: coverage_low raises on every machine
at start (the rolling window begins before the first data), machine_stopped on the
simulator's stops."""


def make_plant(args: argparse.Namespace, workdir: Path, broker: Mosquitto,
               influx: InfluxDB) -> Path:
    """A generated plant (20 points, 1 Hz) aimed at our services and free ports."""
    ports = (args.machines + PER_PORT - 1) // PER_PORT
    data = plant_data(machines=args.machines, points=POINTS, lines=max(1, args.machines // 100),
                      base_port=_free_base_port(ports), per_port=PER_PORT, agents=args.agents,
                      site="chain")
    if args.max_in_flight:  # a port of 200 unit ids is a gateway: configure it as one
        for machine in data["machines"].values():
            machine["connection"].update(gateway=True, max_in_flight=args.max_in_flight)
    data["broker"] = {"host": "127.0.0.1", "port": broker.port}
    data["database"] = {"url": influx.url, "database": "chain"}
    for agent in data["agents"]:
        agent.update(state_dir=str(workdir / f"edge-{agent['id']}"), metrics_port=free_port())
    data["collector"] = {"client_id": "chain-collector", "metrics_port": free_port()}
    if args.kpi_period is not None:
        data["collector"]["kpi_period_s"] = args.kpi_period
    data["api"] = {"port": free_port(), "dev_mode": True}
    # two shifts around the clock, so that shift KPIs (and shift_kpi_low) are always judged
    data["calendar"] = {"shifts": [{"name": "day", "start": "06:00", "end": "18:00"},
                                   {"name": "night", "start": "18:00", "end": "06:00"}]}
    data["alarms"] = {"defaults": ALL_RULES}
    path = workdir / "plant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---------------------------------------------------------------- limits
def limits(plant_file: Path, plant: Plant, broker: Mosquitto, influx: InfluxDB,
           seconds: float) -> dict[str, float]:
    """values/s each foreign part sustains alone (the sim must already be running)."""
    data = yaml.safe_load(plant_file.read_text())
    ids = list(data["machines"])
    count = int(8000 * seconds)
    out = {"mosquitto QoS 1 publish -> subscribe": broker_limit(broker, data, ids, count, 2),
           "InfluxDB /write line protocol": database_limit(influx, data, ids, count)}
    layout: dict[int, list[int]] = {}
    for m in plant.machines.values():
        layout.setdefault(m.connection.port, []).append(m.connection.device_id)
    ok, _errors = asyncio.run(_load(layout, 10, seconds, 16))
    first = next(iter(plant.machines.values()))
    agent = plant.agents[0]
    reads_per_poll = len(plan_reads(first.points, agent.max_read_registers, agent.max_read_gap))
    out[f"simulator Modbus ({reads_per_poll} reads per poll)"] = (
        ok / seconds / reads_per_poll * POINTS)
    return out


# ---------------------------------------------------------------- chain processes
def start_chain(plant_file: Path, plant: Plant, workdir: Path,
                kpi: bool = True, alarms: bool = True) -> dict[str, ComponentProcess]:
    quiet = ["--log-level", "WARNING"]
    collector_args = ["collector", str(plant_file), *quiet, "--kpi" if kpi else "--no-kpi"]
    procs = {
        "collector": ComponentProcess("collector", collector_args,
                                      workdir, health_url(plant.collector.metrics_port)),
        "api": ComponentProcess("api", ["api", str(plant_file), *quiet], workdir,
                                health_url(plant.api.port)),
    }
    if alarms:
        procs["alarms"] = ComponentProcess("alarms", ["alarms", str(plant_file), *quiet],
                                           workdir)
    for agent in plant.agents:
        procs[f"edge {agent.id}"] = ComponentProcess(
            f"edge-{agent.id}", ["edge", str(plant_file), "--agent", agent.id, *quiet], workdir,
            health_url(agent.metrics_port))
    for proc in procs.values():
        proc.start(timeout_s=120)
    return procs


class Probe:
    """Polls InfluxDB every 100 ms for the probe machines' recent samples; a sample's
    latency is the time it was first seen minus its poll timestamp."""

    def __init__(self, influx: InfluxDB, machines: list[str]) -> None:
        names = "|".join(machines)
        self.query = (f'SELECT "_seq" FROM telemetry WHERE time > now() - 20s '
                      f"AND machine =~ /^({names})$/ GROUP BY machine")
        self.influx = influx
        self.latencies: list[float] = []
        self.seen: set[tuple[str, int]] = set()
        self.recording = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        params = {"db": "chain", "q": self.query, "epoch": "ms"}
        with httpx.Client(timeout=5) as http:
            while not self._stop.wait(0.1):
                with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                    series = http.get(f"{self.influx.url}/query", params=params).json()
                    self._note(series["results"][0].get("series", []), time.time() * 1000)

    def _note(self, series: list[dict[str, Any]], now_ms: float) -> None:
        for s in series:
            for ts_ms, _seq in s["values"]:
                key = (s["tags"]["machine"], ts_ms)
                if key not in self.seen:
                    self.seen.add(key)
                    if self.recording:
                        self.latencies.append((now_ms - ts_ms) / 1000)

    def stop(self) -> tuple[float, float, int]:
        self._stop.set()
        self._thread.join(5)
        if not self.latencies:
            return float("nan"), float("nan"), 0
        ordered = sorted(self.latencies)
        return (statistics.median(ordered), ordered[min(len(ordered) - 1,
                int(len(ordered) * 0.99))], len(ordered))


class Watch:
    """CPU (over the window) and peak RSS per component, peak edge queue depth."""

    def __init__(self, pids: dict[str, int], plant: Plant) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.plant = plant
        self.rss = dict.fromkeys(pids, 0.0)
        self.queue_peak = 0.0
        for p in self.procs.values():
            p.cpu_percent(None)
        self.started = time.monotonic()

    def sample(self) -> None:
        for name, p in self.procs.items():
            with contextlib.suppress(psutil.Error):
                self.rss[name] = max(self.rss[name], p.memory_info().rss / 2**20)
        depth = sum(metric(a.metrics_port, "shopfloor_edge_queue_depth")  # type: ignore[arg-type]
                    for a in self.plant.agents)
        self.queue_peak = max(self.queue_peak, depth)

    def cpu(self) -> dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            with contextlib.suppress(psutil.Error):
                out[name] = p.cpu_percent(None)
        return out


def labelled(port: int | None, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and labels.items() <= s.labels.items())


def telemetry_received(port: int) -> float:
    """Telemetry messages (samples) the collector has taken in."""
    return labelled(port, "shopfloor_collector_messages_received_total", kind="telemetry")


def measure(plant: Plant, influx: InfluxDB, watch_pids: dict[str, int], warmup: float,
            duration: float) -> dict[str, Any]:
    ids = list(plant.machines)
    probe = Probe(influx, ids[:: max(1, len(ids) // PROBES)][:PROBES])
    time.sleep(warmup)
    port = plant.collector.metrics_port
    assert port is not None
    samples0 = telemetry_received(port)
    written0, t0 = metric(port, "shopfloor_collector_values_written_total"), time.monotonic()
    probe.recording = True
    watch = Watch(watch_pids, plant)
    while time.monotonic() - t0 < duration:
        time.sleep(1.0)
        watch.sample()
    written1, t1 = metric(port, "shopfloor_collector_values_written_total"), time.monotonic()
    samples_per_s = (telemetry_received(port) - samples0) / (t1 - t0)
    cpu = watch.cpu()
    p50, p99, n = probe.stop()
    diag = {
        "collector unacked at end": metric(port, "shopfloor_collector_pending_unacked"),
        "collector batches written/s (whole run)": metric(
            port, "shopfloor_collector_batches_total") / (t1 - t0 + warmup),
        "collector mean write s": metric(port, "shopfloor_collector_write_seconds_sum")
        / max(1.0, metric(port, "shopfloor_collector_write_seconds_count")),
        "collector mean broker lag s": metric(port, "shopfloor_collector_broker_lag_seconds_sum")
        / max(1.0, metric(port, "shopfloor_collector_broker_lag_seconds_count")),
        "edges published (PUBACKed) total": sum(
            metric(a.metrics_port, "shopfloor_edge_published_total")  # type: ignore[arg-type]
            for a in plant.agents),
        "edges poll failures total (timeouts etc.)": sum(
            metric(a.metrics_port, "shopfloor_edge_poll_failures_total")  # type: ignore[arg-type]
            for a in plant.agents),
        **{f"edges poll failures, {kind}": sum(
            labelled(a.metrics_port, "shopfloor_edge_poll_failures_total", kind=kind)
            for a in plant.agents) for kind in ("timeout", "connect", "exception", "io")},
        "edges polls total": sum(
            metric(a.metrics_port, "shopfloor_edge_polls_total")  # type: ignore[arg-type]
            for a in plant.agents),
    }
    return {"values_per_s": (written1 - written0) / (t1 - t0), "samples_per_s": samples_per_s,
            "p50": p50, "p99": p99,
            "probes": n, "cpu": cpu, "rss": watch.rss, "queue_peak": watch.queue_peak, "diag": diag}


# ---------------------------------------------------------------- loss accounting
def produced(plant: Plant) -> tuple[dict[str, int], set[tuple[str, int]]]:
    """Last seq per machine, and the (machine, seq) samples still held in the outboxes,
    from every agent's SQLite state (read after the agents stopped)."""
    from shopfloor.edge.agent import outbox_path_of

    last: dict[str, int] = {}
    held: set[tuple[str, int]] = set()
    for agent in plant.agents:
        uri = f"file:{outbox_path_of(agent)}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            last.update({m: int(s) for m, s in db.execute("SELECT machine, seq FROM streams")})
            for topic, payload in db.execute("SELECT topic, payload FROM outbox WHERE sample"):
                held.add((topic.split("/")[-2], int(json.loads(payload)["seq"])))
    return last, held


def stored(influx: InfluxDB) -> dict[str, list[int]]:
    """Every stored seq per machine (a seq stored twice, at two timestamps, shows twice)."""
    series = influx.query('SELECT "_seq" FROM telemetry GROUP BY machine', database="chain")
    return {s["tags"]["machine"]: [int(v[1]) for v in s["values"]] for s in series}


def account(plant: Plant, influx: InfluxDB, timeout_s: float) -> dict[str, int]:
    """After the edges stopped: wait until the backlog is stored, then count the seqs
    neither stored nor held in an outbox (lost), and the repeated ones."""
    last, held = produced(plant)
    held_by: dict[str, set[int]] = {}
    for machine, seq in held:
        held_by.setdefault(machine, set()).add(seq)

    def lost(seqs: dict[str, list[int]]) -> int:
        return sum(len(set(range(n + 1)) - set(seqs.get(m, ())) - held_by.get(m, set()))
                   for m, n in last.items())

    deadline = time.monotonic() + timeout_s
    while True:
        seqs = stored(influx)
        if lost(seqs) == 0 or time.monotonic() > deadline:
            break
        time.sleep(2.0)
    return {"produced": sum(n + 1 for n in last.values()), "held": len(held),
            "lost": lost(seqs),
            "duplicated": sum(len(v) - len(set(v)) for v in seqs.values())}


def alarm_counts(influx: InfluxDB) -> dict[str, int]:
    """Alarm transitions stored over the whole run, per rule kind."""
    try:
        series = influx.query('SELECT count("kind") FROM alarm GROUP BY "rule"',
                              database="chain")
    except RuntimeError:  # no alarm written at all
        return {}
    return {s["tags"]["rule"]: int(s["values"][0][1]) for s in series}


# ---------------------------------------------------------------- main
def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev.sh bench chain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument("--agents", type=int, default=None,
                        help="edge agents (default: one per 250 machines)")
    parser.add_argument("--max-in-flight", type=int, default=8,
                        help="the 200 unit ids of a port are one gateway: one connection per "
                        "agent and port, this many requests pipelined (default 8); 0: no "
                        "gateway, a connection per machine, one request at a time")
    parser.add_argument("--limit-seconds", type=float, default=4.0,
                        help="seconds of load per foreign-part limit")
    parser.add_argument("--kpi-period", type=float, default=None,
                        help="collector.kpi_period_s (default: the plant model's)")
    parser.add_argument("--no-kpi", action="store_true",
                        help="run the collector without its live KPI sink (to see its cost)")
    parser.add_argument("--no-alarms", action="store_true",
                        help="leave the alarm component out (to see its cost)")
    parser.add_argument("--drain", type=float, default=180.0,
                        help="max seconds to wait for the backlog after the edges stop")
    args = parser.parse_args(argv)
    args.agents = args.agents or max(1, -(-args.machines // 250))
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        workdir = Path(tmp)
        broker, influx = Mosquitto(workdir / "mosquitto"), InfluxDB(workdir / "influxdb")
        broker.start()
        influx.start()
        procs: dict[str, ComponentProcess] = {}
        try:
            plant_file = make_plant(args, workdir, broker, influx)
            plant = load_plant(plant_file)
            procs["sim"] = ComponentProcess("sim", ["sim", str(plant_file)], workdir,
                                            sim_healthy(plant)).start(timeout_s=120)
            limit = limits(plant_file, plant, broker, influx, args.limit_seconds)
            procs.update(start_chain(plant_file, plant, workdir, kpi=not args.no_kpi,
                                     alarms=not args.no_alarms))
            pids = {name: p.proc.pid for name, p in procs.items() if p.proc is not None}
            pids.update(mosquitto=broker.proc.pid, influxd=influx.proc.pid)  # type: ignore[union-attr]
            result = measure(plant, influx, pids, args.warmup, args.duration)
            for name, proc in procs.items():
                if name.startswith("edge"):
                    proc.stop()
            result.update(account(plant, influx, args.drain))
            result["alarms"] = alarm_counts(influx)
        finally:
            for proc in procs.values():
                proc.stop()
            broker.stop()
            influx.stop()
    report(args, limit, result)


def report(args: argparse.Namespace, limit: dict[str, float], r: dict[str, Any]) -> None:
    """Rates in samples/s (one sample = one poll of one machine, one MQTT message of up to
    20 values) and values/s; the foreign limits were measured with 20-value messages."""
    offered = float(args.machines)
    slowest = min(limit, key=limit.__getitem__)
    ratio = r["samples_per_s"] / (limit[slowest] / POINTS)
    polls, failures = r["diag"]["edges polls total"], r["diag"][
        "edges poll failures total (timeouts etc.)"]
    print(f"\nchain benchmark: {args.machines} machines x {POINTS} points at 1 Hz"
          f" ({args.machines:,} samples/s = {args.machines * POINTS:,} values/s offered),"
          f" {args.agents} edge agent(s), {args.duration:g} s measured after {args.warmup:g} s"
          f" warm-up, {psutil.cpu_count()} cores, load average {psutil.getloadavg()[0]:.1f}"
          f"{', collector without live KPIs' if args.no_kpi else ''}"
          f"{', without the alarm component' if args.no_alarms else ', alarms: every rule type'}")
    print("limits of the parts we did not write (each alone, measured first):")
    for name, value in limit.items():
        print(f"  {name:<44} {value:>12,.0f} values/s = {value / POINTS:>9,.0f} samples/s")
    print("the chain:")
    print(f"  {'samples stored (telemetry messages)':<44} {r['samples_per_s']:>12,.1f} /s"
          f" ({100 * r['samples_per_s'] / offered:.1f} % of offered)")
    print(f"  {'values stored':<44} {r['values_per_s']:>12,.0f} /s (bad-quality and"
          " deadbanded points carry no value)")
    print(f"  {'ratio to the slowest limit (' + slowest.split(' ')[0] + ')':<44} {ratio:>12.3f}")
    print(f"  {'latency poll -> queryable p50 / p99':<44} {r['p50']:.3f} s / {r['p99']:.3f} s"
          f" ({r['probes']} samples of {PROBES} probe machines)")
    print(f"  {'samples produced / lost / duplicated':<44} {r['produced']:,} / {r['lost']:,}"
          f" / {r['duplicated']:,} ({r['held']:,} held in the outboxes at stop, not lost)")
    print(f"  {'edge queue depth (peak, all agents)':<44} {r['queue_peak']:,.0f} samples")
    for name, value in r["diag"].items():
        print(f"  {name:<44} {value:>12,.3f}")
    if not args.no_alarms:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["alarms"].items())) or "none"
        print(f"  {'alarm transitions stored (whole run)':<44} {counts}")
    print("  CPU (% of one core) and peak RSS per component:")
    for name in r["cpu"]:
        print(f"    {name:<20} {r['cpu'][name]:6.1f} %  {r['rss'][name]:7.0f} MiB")
    cpu = " / ".join(f"{r['cpu'][n]:.0f}" for n in r["cpu"])
    rss = " / ".join(f"{r['rss'][n]:.0f}" for n in r["rss"])
    print("markdown row (machines | agents | samples/s offered | stored | values/s | ratio |"
          " p50 | p99 | lost | dup | queue peak | failed polls | load | CPU % | RSS MiB; per"
          " component: " + " / ".join(r["cpu"]) + "):")
    print(f"| {args.machines:,} | {args.agents} | {args.machines:,} |"
          f" {r['samples_per_s']:,.0f} | {r['values_per_s']:,.0f} | {ratio:.3f} |"
          f" {r['p50']:.2f} s | {r['p99']:.2f} s | {r['lost']:,} | {r['duplicated']:,} |"
          f" {r['queue_peak']:,.0f} | {100 * failures / max(polls, 1):.1f} % |"
          f" {psutil.getloadavg()[0]:.1f} | {cpu} | {rss} |")
