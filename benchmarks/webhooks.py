"""Webhook benchmark: `./dev.sh bench webhooks [--flood 1000] [--latency-ms 0 50]`.

An alarm flood (`--flood` machines raising at once, the ISA-18.2 worst case) through the
real notifier: the engine's transitions for a plant of that many machines, handed to
`Notifier.notify` as the alarm loop does.

1. The alarm loop's cost: `notify` of the whole flood (one queue transaction), and of one
   transition at a time (p50 / p99 over the flood).
2. Delivery: a receiver in its own process (stdlib http.server, 200 after
   `--latency-ms`, to stand for a remote service) takes the flood; the time until the
   queue is empty and the rate, per latency.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shopfloor.alarms.engine import Engine, Record
from shopfloor.alarms.notify.notifier import Notifier
from shopfloor.alarms.notify.queue import RowState
from shopfloor.shared.contract import StatePayload
from shopfloor.shared.enums import MachineState
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.plants import example_data
from tests.harness.processes import DIE_WITH_PARENT
from tests.harness.services import free_port

SECRET = "benchmark-secret-0123456789"
RECEIVER = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
delay = float(sys.argv[2]) / 1000
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(delay)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def flood_plant(machines: int, url: str, state_dir: Path) -> Plant:
    """The example plant's first machine copied `machines` times (one line)."""
    data = example_data()
    template = data["machines"]["press1"]
    data["machines"] = {f"m{i:05d}": {**template, "connection": {
        **template["connection"], "port": 10_000 + i // 200, "device_id": 1 + i % 200}}
        for i in range(machines)}
    data["lines"] = [{"id": "line1", "stations": list(data["machines"])}]
    data["agents"] = []
    data["alarms"] = {"defaults": {"machine_stopped": {"after_s": 60},
                                   "agent_offline": {"enabled": False}}}
    data["notifications"] = {"webhooks": [{"id": "bench", "url": url,
                                           "secret_env": "BENCH_SECRET"}],
                             "state_dir": str(state_dir)}
    return parse_plant(data, "<bench>")


def raises(engine: Engine, start: float) -> list[Record]:
    since = dt.datetime.fromtimestamp(start, dt.UTC)
    for machine in {m for m, _ in engine.instances}:
        engine.on_state(machine, StatePayload(ts=since, state=MachineState.STOPPED,
                                              since=since))
    return engine.tick(start + 61)


def _notifier(plant: Plant, engine: Engine) -> Notifier:
    return Notifier(plant, lambda m, r: engine.instances.get((m, r)),  # type: ignore[arg-type]
                    env={"BENCH_SECRET": SECRET})


def loop_cost(machines: int, work: Path) -> dict[str, float]:
    plant = flood_plant(machines, "http://127.0.0.1:9/none", work / "cost")
    engine = Engine(plant, time.time() - 3600)
    records = raises(engine, time.time() - 3000)
    notifier = _notifier(plant, engine)  # not started: nothing is delivered
    started = time.perf_counter()
    notifier.notify(records, time.time())
    whole = time.perf_counter() - started
    again = _notifier(flood_plant(machines, "http://127.0.0.1:9/none", work / "one"), engine)
    each = []
    for record in records:
        started = time.perf_counter()
        again.notify([record], time.time())
        each.append(time.perf_counter() - started)
    notifier.stop()
    again.stop()
    each.sort()
    return {"flood_ms": whole * 1000, "one_p50_ms": statistics.median(each) * 1000,
            "one_p99_ms": each[int(len(each) * 0.99) - 1] * 1000}


def delivery(machines: int, latency_ms: float, work: Path) -> dict[str, Any]:
    port = free_port()
    receiver = subprocess.Popen([*DIE_WITH_PARENT, sys.executable, "-c", RECEIVER, str(port),
                                 str(latency_ms)])
    try:
        time.sleep(0.5)  # the receiver binds; the first attempts are retried anyway
        plant = flood_plant(machines, f"http://127.0.0.1:{port}/hook",
                            work / f"deliver-{latency_ms}")
        engine = Engine(plant, time.time() - 3600)
        records = raises(engine, time.time() - 3000)
        notifier = _notifier(plant, engine)
        notifier.start()
        started = time.perf_counter()
        notifier.notify(records, time.time())
        while notifier.queue.counts().get(("bench", RowState.PENDING), 0):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        failed = notifier.senders["bench"].attempts_failed
        notifier.stop()
        return {"latency_ms": latency_ms, "seconds": elapsed, "per_s": len(records) / elapsed,
                "failed_attempts": failed}
    finally:
        receiver.terminate()
        receiver.wait(10)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench webhooks")
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 50.0])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        work = Path(tmp)
        cost = loop_cost(args.flood, work)
        print(f"alarm loop, flood of {args.flood} raises: notify {cost['flood_ms']:.1f} ms "
              f"(one transaction); one at a time p50 {cost['one_p50_ms']:.2f} ms, "
              f"p99 {cost['one_p99_ms']:.2f} ms")
        for latency in args.latency_ms:
            result = delivery(args.flood, latency, work)
            print(f"delivery, receiver latency {latency:.0f} ms: {args.flood} notifications "
                  f"in {result['seconds']:.1f} s ({result['per_s']:.0f}/s), "
                  f"{result['failed_attempts']} failed attempt(s)")
