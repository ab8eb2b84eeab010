"""The first hour, timed: `./dev.sh bench firsthour [--hours 8] [--runs 1]`.

Runs `./dev.sh up` of the example plant in a scratch folder (free ports, its own run
folder and database, the history of `--hours`), then checks every item of issue 12's
"within 2 minutes" each round (about every 2 s) until all hold, and prints the seconds
from the start of `up` until each first held, with the load average. Items: each README
"Try:" example (live MQTT KPIs, the API's state, the README's setpoint, `shopfloor oee`
for the current shift and the line's WIP), the API's KPIs, `dashboards verify`; and, as
a timeline, the edge's outbox depth (the history still to publish). Then `./dev.sh down`.
The same checks are issue 12's test (tests/local/test_first_hour.py, which also renders
/docs offline in Chromium).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.harness.firsthour import Demo

ROOT = Path(__file__).parents[1]
PATIENCE_S = 600.0
ROUND_S = 2.0


def label(command: str) -> str:
    if command.startswith("mosquitto_sub"):
        return "README: live MQTT KPIs"
    if "--machine" in command:
        return "README: shopfloor oee (current shift)"
    if "--line" in command:
        return "README: shopfloor oee --line (WIP)"
    if "setpoint" in command:
        return "README: setpoint through the API (done)"
    return "README: API state"


def outbox_depth(demo: Demo) -> int | None:
    """The edge's telemetry samples still in its outbox (its /metrics), None if no answer."""
    port = demo.data["agents"][0]["metrics_port"]
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    found = re.search(r"^shopfloor_edge_queue_depth (\S+)$", text, re.M)
    return int(float(found.group(1))) if found else None


def checks(demo: Demo) -> dict[str, Callable[[], list[str]]]:
    items: dict[str, Callable[[], list[str]]] = {
        label(c): (lambda c=c: demo.example(c)) for c in demo.examples}  # type: ignore[misc]
    items["API: OEE and WIP"] = demo.api_kpis
    items["dashboards verify"] = demo.verify
    return items


def one_run(hours: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-firsthour-") as tmp:
        demo = Demo(ROOT, Path(tmp))
        demo.env["SHOPFLOOR_HISTORY_HOURS"] = str(hours)
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        try:
            up = demo.sh("./dev.sh up", timeout=PATIENCE_S)
            held = {"up returned": time.monotonic() - started}
            if up.returncode != 0:
                raise SystemExit(f"./dev.sh up failed:\n{up.stdout}\n{up.stderr}")
            queued = re.search(r"(\d+) polls queued in (\d+) s", up.stdout)
            if queued:
                print(f"history: {queued.group(1)} polls queued in {queued.group(2)} s")
            held.update(watch(demo, started))
        finally:
            stop = time.monotonic()
            demo.sh("./dev.sh down")
            held["down took"] = time.monotonic() - stop
        held["load average before"] = load_before
        held["load average after"] = os.getloadavg()[0]
        return held


def watch(demo: Demo, started: float) -> dict[str, float]:
    """Check every pending item each round until all hold; seconds since `started`."""
    pending = checks(demo)
    held: dict[str, float] = {}
    last: dict[str, str] = {}
    timeline: list[str] = []
    depth_zero = False
    while pending and time.monotonic() - started < PATIENCE_S:
        depth = outbox_depth(demo)
        timeline.append(f"{time.monotonic() - started:.0f}s:{depth}")
        if depth == 0 and not depth_zero:
            depth_zero = True
            held["edge outbox empty (history published)"] = time.monotonic() - started
        for name, check in list(pending.items()):
            problems = check()
            if problems:
                last[name] = problems[0][:160]
            else:
                held[name] = time.monotonic() - started
                del pending[name]
        time.sleep(ROUND_S)
    print("outbox depth:", " ".join(timeline))
    for name, problem in last.items():
        print(f"{'NOT HELD' if name in pending else 'held'} {name}; last problem seen: {problem}")
    if pending:
        raise SystemExit(1)
    held["everything"] = max(held.values())
    return held


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev.sh bench firsthour", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=8.0, help="history to bring in")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    for run in range(args.runs):
        held = one_run(args.hours)
        print(f"\nrun {run + 1} ({os.cpu_count()} cores; {args.hours:g} h of history):")
        loads = [name for name in held if name.startswith("load")]
        for name, value in [*sorted((kv for kv in held.items() if kv[0] not in loads),
                                    key=lambda kv: kv[1]), *((n, held[n]) for n in loads)]:
            unit = "" if name.startswith("load") else " s"
            print(f"  {name:<42} {value:6.1f}{unit}")
