"""The plant file's YAML is parsed in a forked child (shared/loader.py, `isolated`); a
parent killed meanwhile (an agent stopped while it parses) must not leave the child
running on. Real processes: a parent that hands the child endless work, then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.collector.helpers import wait_for

PARENT = (
    "import time\n"
    "from shopfloor.shared.loader import _in_child\n"
    "_in_child(time.sleep, 3600)\n"  # the child's work never ends
)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left


def test_the_parsing_child_dies_with_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    child = None
    try:
        child = wait_for(lambda: (found := _children(parent.pid)) and found[0], 30)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        wait_for(lambda: not _alive(child), 15)
    finally:
        parent.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
