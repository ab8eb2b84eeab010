"""Our own components as real processes (`python -m shopfloor.cli ...`) for end-to-end and
fault tests: started, killed (-9) and restarted like in a plant."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from shopfloor.local.components import served_ports
from shopfloor.local.runner import http_ok, port_open
from shopfloor.shared.plant import Plant

# setpriv (util-linux) execs the command with PR_SET_PDEATHSIG: the component gets SIGTERM
# when the test process dies, even by SIGKILL (e.g. a `timeout`), so a killed test run
# leaves no orphaned components behind. Same pid (exec), so kill/stop work as before.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []


class ComponentProcess:
    """One shopfloor component in its own process, logging to workdir/NAME.log."""

    def __init__(
        self,
        name: str,
        args: list[str],
        workdir: Path,
        healthy: Callable[[], bool] | None = None,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
    ) -> None:
        self.name = name
        self.nofile = nofile  # RLIMIT_NOFILE of the process (None: inherited)
        self.args = args
        self.workdir = workdir
        self.healthy = healthy or (lambda: True)
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout_s: float = 30.0) -> ComponentProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*DIE_WITH_PARENT, sys.executable, "-m", "shopfloor.cli", *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                preexec_fn=self._limits if self.nofile is not None else None,
            )
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not healthy: {self.log_tail()}")
            time.sleep(0.1)
        return self

    def _limits(self) -> None:
        """In the child, before exec: apply `nofile`."""
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code, self.proc = self.proc.returncode, None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def health_url(port: int | None) -> Callable[[], bool]:
    """Healthy when /healthz answers 2xx (or, without a port, as soon as started)."""
    if port is None:
        return lambda: True
    return lambda: http_ok(f"http://127.0.0.1:{port}/healthz")


def ports_open(ports: list[int]) -> Callable[[], bool]:
    return lambda: all(port_open(p) for p in ports)


def sim_healthy(plant: Plant, *more_ports: int) -> Callable[[], bool]:
    """The simulator of `plant` is up when every port it serves answers: its Modbus TCP
    machines' and its OPC UA machines' endpoints (and `more_ports`)."""
    return ports_open([*sorted(served_ports(plant)), *more_ports])


def pipeline(
    plant_file: Path, plant: Plant, workdir: Path, speed: float = 1.0, api: bool = False
) -> list[ComponentProcess]:
    """The plant's simulator, collector, first edge agent (and API), in start order."""
    agent = plant.agents[0]
    procs = [
        ComponentProcess("sim", ["sim", str(plant_file), "--speed", str(speed)], workdir,
                         healthy=sim_healthy(plant)),
        ComponentProcess("collector", ["collector", str(plant_file)], workdir,
                         healthy=health_url(plant.collector.metrics_port)),
        ComponentProcess("edge", ["edge", str(plant_file), "--agent", agent.id], workdir,
                         healthy=health_url(agent.metrics_port)),
    ]
    if api:
        procs.append(ComponentProcess("api", ["api", str(plant_file)], workdir,
                                      healthy=health_url(plant.api.port),
                                      env={"SHOPFLOOR_API_STATE_DIR": str(workdir / "api")}))
    return procs
