"""Real services for tests: mosquitto, InfluxDB 1.x, VictoriaMetrics, each started on a
free loopback port with its data in a temp dir, and stopped (or killed) on demand.
No mocks: these are the same binaries a plant runs."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import httpx

from shopfloor.local.configs import influxdb_conf, mosquitto_conf

LOOPBACK = "127.0.0.1"


EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_ports = random.SystemRandom()


def _below_ephemeral() -> range:
    """Ports below the kernel's ephemeral range (default 32768-60999)."""
    with contextlib.suppress(OSError, ValueError):
        low = int(EPHEMERAL.read_text().split()[0])
        if low > 12_000:
            return range(10_000, low)
    return range(10_000, 32_768)


def free_port() -> int:
    """A loopback port nothing listens on, chosen below the ephemeral range: a port from
    `bind(0)` is an ephemeral one, which any outgoing connection on the machine may take
    as its source port before the service that was meant to listen there starts (seen:
    an edge agent's metrics port taken during `up`'s half-minute backfill)."""
    choices = _below_ephemeral()
    for _ in range(200):
        port = _ports.choice(choices)
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {choices}")


def wait_for_port(port: int, timeout_s: float = 15.0, host: str = LOOPBACK,
                  server: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something listens on the port; `server`: the process that should
    listen there (its exit ends the wait at once, with its exit code)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        if server is not None and server.poll() is not None:
            raise RuntimeError(
                f"the process that should listen on {host}:{port} exited with code "
                f"{server.returncode} (its log says why)")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


def require_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if path is None:
        raise RuntimeError(f"{name} is not installed; run ./dev.sh test (installs it via apt)")
    return path


ServiceT = TypeVar("ServiceT", bound="Service")


@contextlib.contextmanager
def running(service: ServiceT) -> Iterator[ServiceT]:
    """Start `service`, yield it, and stop it however the block ends."""
    service.start()
    try:
        yield service
    finally:
        service.stop()


class Service:
    """A child process on a port, restartable, with its log in its directory."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> None:
        wait_for_port(self.port)

    def start(self) -> None:
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by Popen
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        self.ready()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Mosquitto(Service):
    """mosquitto with persistence on and queues raised well above the default 1000."""

    name = "mosquitto"

    def command(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(mosquitto_conf(self.port, self.workdir))
        return [require_binary("mosquitto"), "-c", str(conf)]


class InfluxDB(Service):
    """Debian's InfluxDB 1.x (v1 /write and InfluxQL /query)."""

    name = "influxd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        conf = self.workdir / "influxdb.conf"
        conf.write_text(influxdb_conf(self.port, self.rpc_port, self.workdir / "data"))
        return [require_binary("influxd"), "-config", str(conf)]

    def ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204:
                    return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited; see {self.workdir}/influxd.log")
            time.sleep(0.1)
        raise TimeoutError("influxd did not answer /ping")

    def query(self, q: str, database: str = "shopfloor") -> list[dict]:
        """Run InfluxQL; return the list of series of the first statement."""
        r = httpx.get(f"{self.url}/query", params={"q": q, "db": database, "epoch": "ms"})
        r.raise_for_status()
        result = r.json()["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return list(result.get("series", []))


class VictoriaMetrics(Service):
    """VictoriaMetrics: accepts InfluxDB's /api/v2/write (numeric fields only)."""

    name = "victoria-metrics"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        return [
            require_binary("victoria-metrics"),
            f"-httpListenAddr={LOOPBACK}:{self.port}",
            f"-storageDataPath={self.workdir}/data",
            "-retentionPeriod=100y",
            "-search.disableCache",
        ]
