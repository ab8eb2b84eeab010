"""Dashboard query benchmark: `./dev.sh bench dashboards [--machines 40] [--hours 8]`.

Fills a real InfluxDB 1.x with `--hours` of 1 Hz telemetry for `--machines` machines (10
lines of stations), their state changes, per-minute `oee_rollup` points, current-shift
`oee` snapshots and per-minute `wip`, all as their writers store them; then loads each
dashboard the way Grafana would (every variable query, then every panel query with the
macros expanded; time range = the whole history, "All" selected) and prints the time per
dashboard load (median of `--repeat`) and its slowest panel.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from shopfloor.dashboards.build import load_committed
from shopfloor.dashboards.verify import Outcome, influxql_client, verify_dashboard
from shopfloor.kpi import records
from shopfloor.kpi.buckets import total
from shopfloor.kpi.calendar import ShiftInstance
from shopfloor.kpi.oee import compute
from shopfloor.kpi.wip import BufferWip, WipResult
from shopfloor.shared import schema
from shopfloor.shared.influx import InfluxQLClient
from tests.dashboards.data import minute_agg
from tests.harness.services import InfluxDB

SITE = "bench"
DATABASE = "bench"
PER_LINE = 4
BATCH = 5000


def machine_lines(line: str, machine: str, start_ms: int, hours: float) -> list[str]:
    tags = {schema.TAG_SITE: SITE, schema.TAG_LINE: line, schema.TAG_MACHINE: machine}
    out: list[str | None] = []
    seconds = int(hours * 3600)
    for i in range(seconds):
        ts = start_ms + i * 1000
        fields = {"state": 1, "total_count": i, "reject_count": i // 50,
                  "temperature": 40.0 + (i % 60) / 10, schema.SEQ_FIELD: i}
        out.append(schema.line(schema.TELEMETRY, tags, fields, ts))
        if i % 600 == 0:
            state = "running" if (i // 600) % 3 else "stopped"
            out.append(schema.line(schema.MACHINE_STATE, tags,
                                   {"state": state, "reason": "jam", "code": 10}, ts))
    aggs = []
    for k in range(seconds // 60):
        aggs.append(minute_agg(k))
        out += records.rollup_lines(SITE, line, machine, start_ms + k * 60000, aggs[-1], True)
    end_ms = start_ms + seconds * 1000
    shift = ShiftInstance("bench", dt.date.today(),
                          start_ms, end_ms + 3600000)
    out.append(records.oee_line(SITE, line, machine, "shift", end_ms - 5000, start_ms, end_ms,
                                compute(total(aggs)), shift))
    return [x for x in out if x]


def line_lines(line: str, stations: list[str], start_ms: int, hours: float) -> list[str]:
    """Per-minute WIP of the line and its buffers, and the line's edge agent online."""
    buffers = tuple(BufferWip(up, down, 4, 1, 200, 0, 8, False)
                    for up, down in zip(stations, stations[1:], strict=False))
    out: list[str | None] = []
    for ts in range(start_ms, start_ms + int(hours * 3600_000), 60_000):
        result = WipResult(line, ts - 3600_000, ts, start_ms, True, buffers, wip=12,
                           mean_wip=11.5, throughput_per_h=1140.0, lead_time_s=36.3,
                           little_holds=True, drift=False, inflow=1200, outflow_good=1140)
        out += records.wip_lines(SITE, "rolling", ts, result)
    tags = {schema.TAG_SITE: SITE, schema.TAG_AGENT: f"edge-{line}"}
    out.append(schema.line(schema.AGENT_STATUS, tags, {"online": True}, start_ms + 60_000))
    return [x for x in out if x]


def fill(url: str, machines: int, hours: float) -> int:
    httpx.post(f"{url}/query", params={"q": f"CREATE DATABASE {DATABASE}"}).raise_for_status()
    start_ms = (int(time.time()) - int(hours * 3600)) * 1000
    written = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for m in range(machines):
            line = f"line{m // PER_LINE}"
            lines = machine_lines(line, f"m{m}", start_ms, hours)
            if m % PER_LINE == 0:
                stations = [f"m{k}" for k in range(m, min(m + PER_LINE, machines))]
                lines += line_lines(line, stations, start_ms, hours)
            for i in range(0, len(lines), BATCH):
                r = client.post("/write", params={"db": DATABASE, "precision": "ms"},
                                content="\n".join(lines[i:i + BATCH]).encode())
                r.raise_for_status()
            written += len(lines)
    return written


def slowest(client: InfluxQLClient, outcomes: list[Outcome]) -> tuple[float, str]:
    timed = []
    for outcome in outcomes:
        started = time.perf_counter()
        client.query(outcome.query)
        timed.append((time.perf_counter() - started, outcome.label))
    return max(timed)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench dashboards")
    parser.add_argument("--machines", type=int, default=40)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = InfluxDB(Path(tmp))
        server.start()
        try:
            started = time.perf_counter()
            points = fill(server.url, args.machines, args.hours)
            print(f"filled {points:,} points ({args.machines} machines x {args.hours} h at 1 Hz"
                  f" + states, rollups, snapshots) in {time.perf_counter() - started:.1f} s")
            client = influxql_client(server.url, DATABASE)
            to_ms = int(time.time() * 1000)
            from_ms = to_ms - int(args.hours * 3600 * 1000)
            for name, model in load_committed().items():
                runs = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    outcomes = verify_dashboard(client, model, from_ms, to_ms)
                    runs.append(time.perf_counter() - started)
                empty = [o.label.split(" / ")[1] for o in outcomes if o.problems]
                cost, label = slowest(client, outcomes)
                print(f"{name:22} {len(outcomes):2} queries  load {statistics.median(runs):6.3f} s"
                      f"  slowest: {label.split(' / ')[1]} {cost:.3f} s"
                      f"  without data: {', '.join(empty) or '-'}")
            client.close()
        finally:
            server.stop()
