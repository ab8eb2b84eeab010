"""Start, find and stop the background processes of a local run. Each process has a pid
file (pid + command line, so that a recycled pid is never signalled) and, under the run
folder's logs/, NAME.out (what it prints: the foreign services' logs, a crash) and, for our
own components, NAME.log (their log lines, rotated: shared.logs)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    def data(self, name: str) -> Path:
        path = self.root / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def prepare(self) -> None:
        for path in (self.logs, self.pids):
            path.mkdir(parents=True, exist_ok=True)


def running(run: RunDir, name: str) -> psutil.Process | None:
    """The live process recorded for `name`, or None (stale pid files are removed)."""
    pidfile = run.pids / f"{name}.json"
    try:
        record = json.loads(pidfile.read_text())
        proc = psutil.Process(record["pid"])
        if proc.cmdline() == record["cmdline"] and proc.status() != psutil.STATUS_ZOMBIE:
            return proc
    except (OSError, ValueError, KeyError, psutil.Error):
        pass
    pidfile.unlink(missing_ok=True)
    return None


def spawn(run: RunDir, name: str, cmdline: list[str],
          env: dict[str, str] | None = None) -> psutil.Process:
    """Start `cmdline` detached (own session), its output to logs/NAME.out; `env` is added
    to this process's environment."""
    with open(run.logs / f"{name}.out", "ab") as log:
        popen = subprocess.Popen(
            cmdline, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **env} if env else None,
        )
    proc = psutil.Process(popen.pid)
    # The command line as given, not as read back: right after fork it may still be empty.
    record = {"pid": popen.pid, "cmdline": cmdline, "started": time.time()}
    (run.pids / f"{name}.json").write_text(json.dumps(record))
    return proc


def stop(run: RunDir, name: str, timeout_s: float = 15.0) -> bool:
    """SIGTERM the recorded process, SIGKILL after timeout_s. True if one was running."""
    return stop_all(run, [name], timeout_s)[name]


def stop_all(run: RunDir, names: list[str], timeout_s: float = 15.0) -> dict[str, bool]:
    """SIGTERM every recorded process of `names` at once, wait for them together, SIGKILL
    those still alive after timeout_s. name -> whether it was running."""
    procs = {name: running(run, name) for name in names}
    alive = [p for p in procs.values() if p is not None]
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, stubborn = psutil.wait_procs(alive, timeout=timeout_s)
    for proc in stubborn:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(stubborn, timeout=5)
    for name in names:
        (run.pids / f"{name}.json").unlink(missing_ok=True)
    return {name: proc is not None for name, proc in procs.items()}


def recorded(run: RunDir) -> list[str]:
    """Names with a pid file, newest first (the order to stop them in)."""
    files = sorted(run.pids.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.stem for p in files]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.3):
        return True
    return False


def http_ok(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1.0).status_code < 300
    return False


def wait_until(check: Callable[[], bool], timeout_s: float, proc: psutil.Process | None) -> str:
    """Poll `check` until it holds: returns "ok", "exited" or "timeout"."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return "ok"
        if proc is not None and not proc.is_running():
            return "exited"
        with contextlib.suppress(psutil.Error):
            if proc is not None and proc.status() == psutil.STATUS_ZOMBIE:
                return "exited"
        time.sleep(0.2)
    return "timeout"


def tail(path: Path, lines: int = 8) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def tail_logs(run: RunDir, name: str, lines: int = 8) -> str:
    """The last lines of a component's log and of its output (where a crash shows)."""
    parts = [f"{p}:\n{tail(p, lines)}" for p in (run.logs / f"{name}.log",
                                                 run.logs / f"{name}.out") if p.exists()]
    return "\n".join(parts)


def env_with_venv() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
