"""Issue 12's "Done when": the README's first command, `./dev.sh up`, in a clean clone
(on free ports and its own run folder: SHOPFLOOR_PLANT / SHOPFLOOR_RUN_DIR), and then, as
soon as they hold: every example of the README's "Try:" block gives numbers (no dashes,
no traceback), the live MQTT KPIs and the API's KPIs are numbers, `shopfloor dashboards
verify` passes, /docs renders offline in headless Chromium, and `./dev.sh down` leaves
nothing running. How long it took from `up` is printed (a figure, not an assertion: it
is measured by `./dev.sh bench firsthour`, docs/local.md)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.api.test_docs_offline import assert_docs_render
from tests.harness.browser import browser  # noqa: F401 (fixture)
from tests.harness.firsthour import Demo

REPO = Path(__file__).parents[2]
PATIENCE_S = 300.0  # fail after this; the figure that matters is printed


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
    # The venv that runs the tests serves the clone too (./dev.sh runs the clone's code
    # with it); a clean machine's first `up` installs one (not timed here).
    demo = Demo(clone, tmp_path)
    assert len(demo.examples) == 5 and demo.examples[0].startswith("mosquitto_sub")
    started = time.monotonic()
    try:
        up = demo.sh("./dev.sh up", timeout=PATIENCE_S)
        up_s = time.monotonic() - started
        assert up.returncode == 0, up.stdout + up.stderr
        assert "history" in up.stdout and "Traceback" not in up.stdout + up.stderr
        deadline = started + PATIENCE_S
        problems = wait_for(demo.readme, deadline)
        problems += wait_for(demo.api_kpis, deadline)
        problems += wait_for(demo.verify, deadline)
        assert_docs_render(browser, demo.api)
        ready_s = time.monotonic() - started
        print(f"\n./dev.sh up returned after {up_s:.0f} s; README examples, API and MQTT KPIs, "
              f"dashboards verify and offline /docs all good {ready_s:.0f} s after it started "
              "(issue 12 asks for 2 minutes)")
        assert problems == [], problems
    finally:
        pids = demo.pids()
        down = demo.sh("./dev.sh down")
    assert down.returncode == 0, down.stdout + down.stderr
    left = [p for p in psutil.process_iter(["pid", "cmdline"])
            if p.info["pid"] in pids or str(demo.plant) in " ".join(p.info["cmdline"] or [])]
    assert left == []
