"""The whole chain as real processes — `shopfloor sim` -> `shopfloor edge` -> mosquitto ->
`shopfloor collector` -> InfluxDB — on the example plant, relocated onto the test's
services, and the checks every fault test makes: every sequence number the edge produced
is stored exactly once, and the system is healthy again afterwards."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shopfloor.edge.agent import outbox_path_of
from shopfloor.shared.loader import load_plant
from shopfloor.shared.plant import Machine, Plant
from shopfloor.shared.protocols.opcua import OpcUaConnection, ReadMode
from tests.collector.helpers import metric, seqs_stored, wait_for
from tests.harness.plants import example_data, keep_lines, relocate, write_plant
from tests.harness.processes import ComponentProcess, health_url, sim_healthy
from tests.harness.services import InfluxDB, Mosquitto, free_port

POLL_INTERVAL_S = 0.2
LineFilter = Callable[[dict[str, Any]], bool]


def modbus_line(line: dict[str, Any]) -> bool:
    """The example plant's Modbus line (what the fault matrix runs on by default)."""
    return bool(line["protocols"] == {"modbus"})


def opcua_line(line: dict[str, Any]) -> bool:
    """The example plant's mixed line: frame1 on Modbus, fit1 on OPC UA (subscription)."""
    return "opcua" in line["protocols"]


def every_line(line: dict[str, Any]) -> bool:
    """The whole example plant: both lines, both protocols (the fault matrix)."""
    return True


@dataclass
class Audit:
    """What the edge produced against what InfluxDB holds, summed over machines."""

    produced: int
    stored: int
    missing: int
    duplicated: int
    per_machine: dict[str, dict[str, int]]

    @property
    def exactly_once(self) -> bool:
        return self.missing == 0 and self.duplicated == 0


def chain_plant(workdir: Path, broker: Mosquitto, influx: InfluxDB,
                lines: LineFilter = modbus_line, **queue: Any) -> Path:
    """The example plant's `lines` (by default its Modbus line) on the test's broker and
    database, every machine polled every `POLL_INTERVAL_S`, short backoffs so that
    recovery is quick, `queue` for the outbox."""
    data = relocate(example_data(), workdir, broker.port, influx.url)
    keep_lines(data, lines)
    for machine in data["machines"].values():
        machine["poll_interval_s"] = POLL_INTERVAL_S
        machine["connection"]["timeout_s"] = 0.3
        for point in machine["points"]:
            point.pop("poll_interval_s", None)  # one telemetry message per poll
    agent = data["agents"][0]
    agent.update(backoff_max_s=1.0, offline_after_failures=2)
    agent["queue"] = {**agent.get("queue", {}), **queue}
    data["broker"]["keepalive_s"] = 5
    return write_plant(data, workdir / "plant.yaml")


def _subscribed(machine: Machine) -> bool:
    connection = machine.connection
    return isinstance(connection, OpcUaConnection) and connection.mode is ReadMode.SUBSCRIPTION


class Chain:
    """Start, fault and audit the chain; components log to workdir/NAME.log."""

    def __init__(self, workdir: Path, broker: Mosquitto, influx: InfluxDB,
                 lines: LineFilter = modbus_line, **queue: Any) -> None:
        self.workdir, self.broker, self.influx = workdir, broker, influx
        path = chain_plant(workdir, broker, influx, lines, **queue)
        self.plant: Plant = load_plant(path)
        self.agent = self.plant.agents[0]
        self.control_port = free_port()
        self.sim = ComponentProcess(
            "sim", ["sim", str(path), "--control-port", str(self.control_port)], workdir,
            healthy=sim_healthy(self.plant, self.control_port))
        self.collector = ComponentProcess(
            "collector", ["collector", str(path)], workdir,
            healthy=health_url(self.plant.collector.metrics_port))
        self.edge = ComponentProcess(
            "edge", ["edge", str(path), "--agent", self.agent.id], workdir,
            healthy=health_url(self.agent.metrics_port))

    @property
    def machines(self) -> list[str]:
        return list(self.agent.machines)

    @property
    def polled(self) -> list[str]:
        """The machines the edge polls (a subscription's samples come with changes)."""
        return [m for m in self.machines if not _subscribed(self.plant.machines[m])]

    @property
    def database(self) -> str:
        return self.plant.database.database

    def start(self) -> Chain:
        """Start sim, collector and edge; if one does not come up, stop the others."""
        try:
            for part in (self.sim, self.collector, self.edge):
                part.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for part in (self.edge, self.collector, self.sim):
            part.stop()

    # ------------------------------------------------------------------ observations
    def produced(self) -> dict[str, int]:
        """Last sequence number per machine, from the edge's own SQLite state (committed
        with the sample that carries it)."""
        path = outbox_path_of(self.agent)
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return {m: int(s) for m, s in db.execute("SELECT machine, seq FROM streams")}

    def audit(self, upto: dict[str, int] | None = None, timeout_s: float = 60,
              expected_missing: int = 0, machines: list[str] | None = None) -> Audit:
        """Wait (up to timeout_s) until every seq 0..upto[machine] is stored (all but
        `expected_missing` of them), then count the missing and the repeated ones (a
        repeat is two stored samples, i.e. two timestamps, with one seq)."""
        last = upto if upto is not None else self.produced()
        last = {m: n for m, n in last.items() if machines is None or m in machines}
        deadline = time.monotonic() + timeout_s
        while True:
            stored = {m: seqs_stored(self.influx, self.database, m) for m in last}
            missing = sum(len(set(range(n + 1)) - set(stored[m])) for m, n in last.items())
            if missing <= expected_missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        per_machine = {}
        for m, n in last.items():
            upto_n = [s for s in stored[m] if s <= n]
            per_machine[m] = {
                "produced": n + 1,
                "missing": len(set(range(n + 1)) - set(upto_n)),
                "duplicated": len(stored[m]) - len(set(stored[m])),
            }
        return Audit(
            produced=sum(v["produced"] for v in per_machine.values()),
            stored=sum(len(set(s)) for s in stored.values()),
            missing=sum(v["missing"] for v in per_machine.values()),
            duplicated=sum(v["duplicated"] for v in per_machine.values()),
            per_machine=per_machine,
        )

    def status(self, name: str) -> dict[str, Any]:
        """The /healthz body of "edge" or "collector", healthy (200) or not (503)."""
        port = self.agent.metrics_port if name == "edge" else self.plant.collector.metrics_port
        body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        return body

    def health(self) -> dict[str, dict[str, Any] | None]:
        """/healthz of the edge and the collector (None when it does not answer 200)."""
        out: dict[str, dict[str, Any] | None] = {}
        for name, port in (("edge", self.agent.metrics_port),
                           ("collector", self.plant.collector.metrics_port)):
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                out[name] = reply.json() if reply.status_code == 200 else None
            except httpx.HTTPError:
                out[name] = None
        return out

    def healthy(self) -> bool:
        health = self.health()
        edge = health["edge"]
        return (health["collector"] is not None and edge is not None
                and edge["devices_online"] == len(self.machines))

    def collector_metric(self, name: str) -> float:
        return metric(self.plant.collector.metrics_port, name)

    def edge_metric(self, name: str) -> float:
        assert self.agent.metrics_port is not None
        return metric(self.agent.metrics_port, name)

    def edge_metric_labelled(self, name: str, **labels: str) -> float:
        """Sum of an edge metric's samples whose labels include `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"http://127.0.0.1:{self.agent.metrics_port}/metrics", timeout=5).text
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == name and labels.items() <= s.labels.items())

    def samples_between(self, start_s: float, end_s: float) -> dict[str, int]:
        """Samples stored per machine with a poll timestamp in [start_s, end_s) (epoch s)."""
        series = self.influx.query(
            f'SELECT count("_seq") FROM telemetry WHERE time >= {int(start_s * 1e9)} '
            f"AND time < {int(end_s * 1e9)} GROUP BY machine", database=self.database)
        counts = {s["tags"]["machine"]: int(s["values"][0][1]) for s in series}
        return {m: counts.get(m, 0) for m in self.machines}

    def set_fault(self, machine: str, mode: str) -> None:
        reply = httpx.post(f"http://127.0.0.1:{self.control_port}/faults/{machine}",
                           params={"mode": mode}, timeout=5)
        reply.raise_for_status()

    # ------------------------------------------------------------------ recovery
    def recover(self, restored_at: float, timeout_s: float = 90) -> float:
        """Seconds from `restored_at` (monotonic) until both components are healthy and
        every sample the edge had produced by then is stored."""
        snapshot = self.produced()
        wait_for(self.healthy, timeout_s)
        audit = self.audit(snapshot, timeout_s)
        assert audit.missing == 0, audit
        return time.monotonic() - restored_at

    def assert_flowing(self, timeout_s: float = 20, expected_missing: int = 0) -> None:
        """New samples keep arriving in InfluxDB for every machine."""
        before = self.produced()
        wait_for(lambda: all(n > before[m] + 3 for m, n in self.produced().items()), timeout_s)
        after = self.produced()
        audit = self.audit(after, timeout_s, expected_missing)
        assert audit.missing == expected_missing, audit
