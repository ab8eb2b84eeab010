"""Issue 12's "Done when": the README's first command, `./dev.sh up`, in a clean clone
(on free ports and its own run folder: SHOPFLOOR_PLANT / SHOPFLOOR_RUN_DIR), and then, as
soon as they hold: every example of the README's "Try:" block gives numbers (no dashes,
no traceback), the live MQTT KPIs and the API's KPIs are numbers, `shopfloor dashboards
verify` passes, /docs renders offline in headless Chromium, and `./dev.sh down` leaves
nothing running. How long it took from `up` is measured and printed (a figure, not an
assertion: the issue asks for 2 minutes)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from tests.api.test_docs_offline import assert_docs_render
from tests.harness.browser import browser  # noqa: F401 (fixture)
from tests.harness.plants import example_data, relocate, write_plant
from tests.harness.services import free_port

REPO = Path(__file__).parents[2]
NUMBER = r"-?\d+(\.\d+)?"
PATIENCE_S = 300.0  # fail after this; the figure that matters is printed


def readme_examples(readme: str) -> list[str]:
    """The commands of the README's "Try:" block, continuation lines joined."""
    block = readme.split("Try:\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    joined = block.replace("\\\n", " ")
    return [re.sub(r"\s+#[^'\"]*$", "", line).strip() for line in joined.splitlines()]


def localise(command: str, plant: Path, data: dict) -> str:
    """The example on the test's ports and plant file; mosquitto_sub stops after the
    retained KPI messages."""
    command = command.replace("deploy/plant.example.yaml", str(plant))
    command = command.replace("127.0.0.1:8000", f"127.0.0.1:{data['api']['port']}")
    if command.startswith("mosquitto_sub"):
        site = data["site"]["id"]
        command = command.replace("-p 1883", f"-p {data['broker']['port']}")
        command = command.replace("'shopfloor/v1/#'", f"'shopfloor/v1/{site}/+/+/kpi'")
        command += " -C 4 -W 20"
    return command


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
        rows = dict(line.split(None, 1) for line in out.splitlines() if " " in line.strip())
        bad = [k for k in ("availability", "performance", "quality", "oee")
               if not re.fullmatch(NUMBER, rows.get(k, "-").strip())]
        return [f"{command}: {bad} not numbers"] if bad else []
    if " oee " in command and "--line" in command:
        rows = dict(line.split(None, 1) for line in out.splitlines() if " " in line.strip())
        ok = re.fullmatch(NUMBER, rows.get("wip", "-").strip())
        return [] if ok else [f"{command}: wip not a number: {out[:300]}"]
    if "/state" in command:
        return [] if '"press1"' in out else [f"{command}: {out[:300]}"]
    return [] if '"status":"done"' in out.replace(" ", "") else [f"{command}: {out[:300]}"]


def api_kpis(data: dict) -> list[str]:
    url = f"http://127.0.0.1:{data['api']['port']}/api/v1"
    head = {"X-API-Key": "dev-viewer"}
    oee = httpx.get(f"{url}/machines/pack1/oee", headers=head, timeout=30).json()
    wip = httpx.get(f"{url}/lines/line1/wip", headers=head, timeout=30).json()
    problems = []
    if not isinstance(oee.get("result", {}).get("oee"), float):
        problems.append(f"API OEE: {str(oee)[:300]}")
    if not isinstance(wip.get("wip", {}).get("wip"), int | float):
        problems.append(f"API WIP: {str(wip)[:300]}")
    return problems


def wait_for(check: Callable[[], list[str]], deadline: float) -> list[str]:
    problems = check()
    while problems and time.monotonic() < deadline:
        time.sleep(3)
        problems = check()
    return problems


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_readme_first_command_in_a_clean_clone(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    clone = tmp_path / "shopfloor"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    data = relocate(example_data(), tmp_path, free_port(), f"http://127.0.0.1:{free_port()}",
                    database="shopfloor")
    plant = write_plant(data, tmp_path / "plant.yaml")
    # The venv that runs the tests serves the clone too (./dev.sh runs the clone's code
    # with it); a clean machine's first `up` installs one (not timed here).
    env = {**os.environ, "SHOPFLOOR_PLANT": str(plant), "SHOPFLOOR_RUN_DIR": str(tmp_path / "run"),
           "SHOPFLOOR_VENV": sys.prefix, "SHOPFLOOR_NO_INSTALL": "1"}

    def sh(command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=timeout)

    examples = [localise(c, plant, data) for c in readme_examples(
        (clone / "README.md").read_text())]
    assert len(examples) == 5 and examples[0].startswith("mosquitto_sub")
    started = time.monotonic()
    try:
        up = sh("./dev.sh up", timeout=PATIENCE_S)
        up_s = time.monotonic() - started
        assert up.returncode == 0, up.stdout + up.stderr
        assert "history" in up.stdout and "Traceback" not in up.stdout + up.stderr
        deadline = started + PATIENCE_S

        def readme() -> list[str]:
            problems = []
            for command in examples:
                result = sh(command)
                problems += numbers_in(command, result.stdout + result.stderr)
            return problems

        def verify() -> list[str]:
            r = sh(f"./dev.sh shopfloor dashboards verify --influx-url {data['database']['url']}"
                   " --database shopfloor")
            return [] if r.returncode == 0 else [line for line in r.stdout.splitlines()
                                                 if not line.endswith(": ok")]

        problems = wait_for(readme, deadline)
        problems += wait_for(lambda: api_kpis(data), deadline)
        problems += wait_for(verify, deadline)
        assert_docs_render(browser, f"http://127.0.0.1:{data['api']['port']}")
        ready_s = time.monotonic() - started
        print(f"\n./dev.sh up returned after {up_s:.0f} s; README examples, API and MQTT KPIs, "
              f"dashboards verify and offline /docs all good {ready_s:.0f} s after it started "
              "(issue 12 asks for 2 minutes)")
        assert problems == [], problems
    finally:
        pids = [json.loads(p.read_text())["pid"] for p in (tmp_path / "run/pids").glob("*.json")]
        down = sh("./dev.sh down")
    assert down.returncode == 0, down.stdout + down.stderr
    left = [p for p in psutil.process_iter(["pid", "cmdline"])
            if p.info["pid"] in pids or str(plant) in " ".join(p.info["cmdline"] or [])]
    assert left == []
