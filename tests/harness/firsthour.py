"""The newcomer's first hour (issue 12), shared by its "done when" test
(tests/local/test_first_hour.py) and its benchmark (`./dev.sh bench firsthour`):
`./dev.sh up` of the example plant on free ports with its own run folder, and the checks
that must hold after it — the README's "Try:" examples give numbers, the API's and the
live MQTT KPIs are numbers, `shopfloor dashboards verify` passes. Each check returns what
is wrong (empty: it holds)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.harness.plants import example_data, relocate, write_plant
from tests.harness.services import free_port

NUMBER = r"-?\d+(\.\d+)?"
INTEGER = r"-?\d+"


def readme_examples(readme: str) -> list[str]:
    """The commands of the README's "Try:" block, continuation lines joined."""
    block = readme.split("Try:\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    joined = block.replace("\\\n", " ")
    return [re.sub(r"\s+#[^'\"]*$", "", line).strip() for line in joined.splitlines()]


def localise(command: str, plant: Path, data: dict[str, Any]) -> str:
    """The example on the run's ports and plant file; mosquitto_sub stops after the
    retained KPI messages."""
    command = command.replace("deploy/plant.example.yaml", str(plant))
    command = command.replace("127.0.0.1:8000", f"127.0.0.1:{data['api']['port']}")
    if command.startswith("mosquitto_sub"):
        site = data["site"]["id"]
        command = command.replace("-p 1883", f"-p {data['broker']['port']}")
        command = command.replace("'shopfloor/v1/#'", f"'shopfloor/v1/{site}/+/+/kpi'")
        command += " -C 4 -W 20"
    return command


def _rows(out: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in out.splitlines() if " " in line.strip())


def numbers_in(command: str, out: str) -> list[str]:
    """What is wrong with an example's output (empty: it gives numbers)."""
    if "Traceback" in out:
        return [f"{command}: traceback"]
    if command.startswith("mosquitto_sub"):
        payloads = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if " " in line]
        ok = len(payloads) == 4 and all(
            isinstance(p.get("rolling", {}).get("oee"), float)
            and isinstance(p.get("shift", {}).get("oee"), float) for p in payloads)
        return [] if ok else [f"{command}: KPIs not all numbers: {out[:300]}"]
    if " oee " in command and "--machine" in command:
        rows = _rows(out)
        bad = [k for k in ("availability", "performance", "quality", "oee")
               if not re.fullmatch(NUMBER, rows.get(k, "-").strip())]
        return [f"{command}: {bad} not numbers"] if bad else []
    if " oee " in command and "--line" in command:
        # a count of parts: an integer, never unanchored
        wip = re.fullmatch(INTEGER, _rows(out).get("wip", "-").strip())
        return [] if wip else [f"{command}: wip not an integer: {out[:300]}"]
    if "/state" in command:
        return [] if '"press1"' in out else [f"{command}: {out[:300]}"]
    return [] if '"status":"done"' in out.replace(" ", "") else [f"{command}: {out[:300]}"]


@dataclass
class Demo:
    """`./dev.sh up` of the example plant, from `repo`, on free ports, with its plant
    file and run folder under `workdir`; the venv running this serves it."""

    repo: Path
    workdir: Path

    def __post_init__(self) -> None:
        self.data = relocate(example_data(), self.workdir, free_port(),
                             f"http://127.0.0.1:{free_port()}", database="shopfloor")
        self.plant = write_plant(self.data, self.workdir / "plant.yaml")
        self.run_dir = self.workdir / "run"
        self.env = {**os.environ, "SHOPFLOOR_PLANT": str(self.plant),
                    "SHOPFLOOR_RUN_DIR": str(self.run_dir), "SHOPFLOOR_VENV": sys.prefix,
                    "SHOPFLOOR_NO_INSTALL": "1"}
        self.examples = [localise(c, self.plant, self.data) for c in readme_examples(
            (self.repo / "README.md").read_text())]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.data['api']['port']}"

    def sh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], cwd=self.repo, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def pids(self) -> list[int]:
        return [json.loads(p.read_text())["pid"]
                for p in (self.run_dir / "pids").glob("*.json")]

    # -- the checks ----------------------------------------------------------------------

    def example(self, command: str) -> list[str]:
        result = self.sh(command)
        return numbers_in(command, result.stdout + result.stderr)

    def readme(self) -> list[str]:
        return [problem for command in self.examples for problem in self.example(command)]

    def api_kpis(self) -> list[str]:
        head = {"X-API-Key": "dev-viewer"}
        oee = httpx.get(f"{self.api}/api/v1/machines/pack1/oee", headers=head,
                        timeout=30).json()
        wip = httpx.get(f"{self.api}/api/v1/lines/line1/wip", headers=head, timeout=30).json()
        problems = []
        if not isinstance(oee.get("result", {}).get("oee"), float):
            problems.append(f"API OEE: {str(oee)[:300]}")
        if not isinstance(wip.get("wip", {}).get("wip"), int):
            problems.append(f"API WIP: {str(wip)[:300]}")
        return problems

    def verify(self) -> list[str]:
        r = self.sh(f"./dev.sh shopfloor dashboards verify --influx-url "
                    f"{self.data['database']['url']} --database shopfloor")
        return [] if r.returncode == 0 else [line for line in r.stdout.splitlines()
                                             if not line.endswith(": ok")] or [r.stderr[-300:]]
