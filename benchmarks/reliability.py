"""Regenerate docs/reliability.md from the system tests:

    ./dev.sh bench reliability                  # run tests/system (~5 min), write the page
    ./dev.sh bench reliability --from R.jsonl   # only render results kept from a run
    ./dev.sh bench reliability -k queue         # a subset (pytest -k), page from that subset

The tests (tests/system/) append one JSON line per scenario to $SHOPFLOOR_RELIABILITY_OUT
(tests/system/report.py); this command sets it, runs pytest, and renders the fault matrix
and the hostile-input counts as markdown between the page's two markers (BEGIN and END
below). Everything outside them is written by hand (the classes closed by issue 11, each
with its tests) and is kept as it is; a page without the markers is refused, not
overwritten.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
PAGE = ROOT / "docs" / "reliability.md"
ENV = "SHOPFLOOR_RELIABILITY_OUT"


def run_tests(results: Path, selection: str | None) -> str:
    """Run tests/system with the results file set; the pytest summary line."""
    cmd = [sys.executable, "-m", "pytest", "tests/system", "-q", "-p", "no:cacheprovider"]
    if selection:
        cmd += ["-k", selection]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, ENV: str(results)},
                          capture_output=True, text=True, check=False)
    print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n")
    summary = [ln for ln in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    return summary[-1].strip("= ") if summary else f"pytest exit code {proc.returncode}"


def load(results: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()]


def _extra(row: dict[str, Any]) -> str:
    known = {"kind", "scenario", "injected", "produced", "stored", "missing", "duplicated",
             "recovery_s"}
    return "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in row.items() if k not in known)


def fault_table(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| fault | what was injected | samples produced | lost | duplicated in InfluxDB |"
           " time to recover | also measured |",
           "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        out.append(f"| {r['scenario']} | {r['injected']} | {r['produced']:,} |"
                   f" {r['missing']:,} | {r['duplicated']:,} | {r['recovery_s']} s |"
                   f" {_extra(r)} |")
    return out


def mqtt_section(rows: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for r in rows:
        dead = r["collector_dead_lettered"]
        counted = {label: dead.get(label, 0) if label.startswith("collector:")
                   else r["edge_refused"] for label in r["by_class"]}
        exact = all(counted[label] == sent for label, sent in r["by_class"].items())
        verdict = ("all refused and counted" if exact else
                   "counted NOT as sent (more: counted twice; fewer: missed), see the table")
        out += [f"{r['sent']:,} messages (hypothesis, derandomized), {verdict}:", "",
                "| topic / class | sent | counted by the component |", "| --- | ---: | ---: |"]
        for label, sent in r["by_class"].items():
            out.append(f"| {label} | {sent:,} | {counted[label]:,.0f} |")
        outcomes = ", ".join(f"{k} {v:,.0f}" for k, v in r.get("edge_outcomes", {}).items())
        out += ["", f"Edge command outcomes: {outcomes}. Commands executed: "
                f"{r['edge_done']:,.0f}.", ""]
    return out


def api_section(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| key | requests | answers by status | forbidden operations |"
           " commands reaching the edge when forbidden |", "| --- | ---: | --- | ---: | ---: |"]
    for r in rows:
        statuses = ", ".join(f"{k}: {v}" for k, v in r["by_status"].items())
        out.append(f"| {r['target'].split(': ', 1)[1]} | {r['sent']} | {statuses} |"
                   f" {r['forbidden_operations']} | {r['commands_reaching_edge_when_forbidden']} |")
    return out


def plant_section(rows: list[dict[str, Any]]) -> list[str]:
    out = [f"{len(rows)} kinds of mistake, {sum(1 for r in rows if r['refused'])} refused:", "",
           "| mistake | first error (path: message) |", "| --- | --- |"]
    for r in rows:
        first = r["errors"][0].replace("|", "\\|") if r["errors"] else ""
        out.append(f"| {r['mistake']} | `{first}` |")
    return out


def unbounded_section(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| input | what happened |", "| --- | --- |"]
    out += [f"| {r['input']} | {r['outcome']} |" for r in rows]
    return out


def render(rows: list[dict[str, Any]], summary: str) -> str:
    faults = [r for r in rows if r["kind"] == "fault"]
    hostile = [r for r in rows if r["kind"] == "hostile"]
    mqtt = [r for r in hostile if r.get("target", "").startswith("MQTT")]
    api = [r for r in hostile if r.get("target", "").startswith("API")]
    plant = [r for r in hostile if r.get("target") == "plant file"]
    unbounded = [r for r in rows if r["kind"] == "unbounded"]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "Generated by `./dev.sh bench reliability` (benchmarks/reliability.py), which runs",
        "the system tests (tests/system/) and renders what they recorded, down to the END",
        "marker.",
        f"Last run: {when}, {os.cpu_count()} cores, load average"
        f" {os.getloadavg()[0]:.1f} at the end; pytest: {summary}.",
        "",
        "## Fault matrix",
        "",
        "Each fault is injected while the whole chain runs as real processes: `shopfloor sim`",
        "(the example plant's 6 machines: 5 on Modbus TCP polled every 0.2 s, fit1 on OPC UA",
        "in subscription mode, publishing every 0.2 s) -> `shopfloor edge` -> mosquitto",
        "-> `shopfloor collector` -> InfluxDB. *Samples produced* is the edge's own count",
        "(the last sequence number per machine in its SQLite state, + 1, summed); *lost* is",
        "the sequence numbers missing from the `_seq` field stored in InfluxDB, *duplicated*",
        "a sequence number stored twice (two timestamps). *Time to recover* runs from the",
        "moment the fault is removed until /healthz of edge and collector answers 200 and",
        "every sample produced by then is queryable. Redelivered messages (QoS 1 after a",
        "restart) are counted by the collector and absorbed by InfluxDB's idempotent writes.",
        "The fault tests share one chain, so *samples produced* accumulates down the table.",
        "",
        *fault_table(faults),
        "",
        "## Hostile input",
        "",
        "### MQTT: every topic the collector and the edge read",
        "",
        "Telemetry, state and agent-status topics (read by the collector) and the machines'",
        "command topics (read by the edge), while the chain runs. Expected count per class =",
        "the collector's `shopfloor_collector_dead_letters_total{reason}` and the edge's",
        '`shopfloor_edge_commands_total{outcome="rejected"|"expired"|"dead_letter"}`.',
        "",
        *mqtt_section(mqtt),
        "### API: property-based run of its OpenAPI document",
        "",
        "schemathesis (positive and negative generation, the real machine/line ids too) on",
        "every documented operation, with no key, an invalid key and a key of each role.",
        "No answer was a 5xx; a forbidden operation was refused (401/403; 422 when the body",
        "is not even valid, which FastAPI checks before the role; without a valid key no",
        "body is read: 401) and no command reached the edge.",
        "",
        *api_section(api),
        "",
        "### Plant files",
        "",
        *plant_section(plant),
        "",
        "## Unbounded input",
        "",
        "One input must never make a component do unbounded work (issue 11). Telemetry passes",
        "one admission rule at every consumer (docs/mqtt-contract.md, \"Admission\"); the API",
        "checks the key before reading a body, caps bodies, bounds raw history windows and",
        "runs on-demand work under a timeout and a concurrency limit (docs/api.md, \"Limits\").",
        "Each row is a test on real processes (collector, API, mosquitto, InfluxDB); re-run",
        "them with `./dev.sh test tests/system -k unbounded` (`./dev.sh bench reliability`",
        "regenerates this page).",
        "",
        *unbounded_section(unbounded),
    ]
    return "\n".join(lines)


BEGIN = "<!-- BEGIN measured: written by ./dev.sh bench reliability -->"
END = "<!-- END measured: everything below is written by hand -->"


class PageError(Exception):
    """The page has not exactly one BEGIN marker followed by one END marker."""


def splice(page: str, measured: str) -> str:
    """`page` with what lies between its markers replaced by `measured`; the rest, the
    hand-written part, unchanged."""
    if page.count(BEGIN) != 1 or page.count(END) != 1 or page.index(BEGIN) > page.index(END):
        raise PageError(f"the page must hold the line {BEGIN!r} once, then {END!r} once: "
                        "add them around the measured sections")
    head, rest = page.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{measured.strip(chr(10))}\n\n{END}{tail}"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="./dev.sh bench reliability", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="render this results file instead of running the tests")
    parser.add_argument("-k", dest="selection", default=None, help="pytest -k selection")
    parser.add_argument("--keep", type=Path, default=None, help="also keep the results here")
    parser.add_argument("-o", "--output", type=Path, default=PAGE)
    args = parser.parse_args(argv)
    if args.source is not None:
        rows, summary = load(args.source), "(rendered from a kept results file)"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "results.jsonl"
            results.touch()
            summary = run_tests(results, args.selection)
            rows = load(results)
            if args.keep:
                args.keep.write_text(results.read_text())
    try:
        page = splice(args.output.read_text(), render(rows, summary))
    except (OSError, PageError) as exc:
        raise SystemExit(f"./dev.sh bench reliability: {args.output}: {exc}") from None
    args.output.write_text(page)
    print(f"wrote the measured part of {args.output} ({len(rows)} results; pytest: {summary})")
