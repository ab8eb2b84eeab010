"""A poll that raises (a bug, not a device failure) is handled as a crashed supervised
task was before polls became callbacks: logged, counted, the agent unhealthy, and the
machine polled again after a backoff; the other machines never notice."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shopfloor.edge.poller import MachinePoller
from tests.edge.conftest import ModbusServer, machine_spec, plant_data


def test_a_crashing_poll_is_counted_and_polling_goes_on(
    mosquitto: Any,
    unique_site: str,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crashes_left = [2]
    lock = threading.Lock()
    original = MachinePoller.accept

    def accept(self: MachinePoller, *args: Any) -> bool:
        if self.machine_id == "bad":
            with lock:
                if crashes_left[0]:
                    crashes_left[0] -= 1
                    raise RuntimeError("a bug in the poll path")
        return original(self, *args)

    monkeypatch.setattr(MachinePoller, "accept", accept)
    server = ModbusServer((1, 2)).start()
    machines = {
        "bad": machine_spec(server.port, 1, poll_interval_s=0.2),
        "good": machine_spec(server.port, 2, poll_interval_s=0.2),
    }
    data = plant_data(unique_site, mosquitto.port, machines, tmp_path / "state")
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    try:
        agent = run_agent(data).agent
        rec.wait_for(lambda: len(rec.payloads("/good/telemetry")) >= 3)
        deadline = time.monotonic() + 30
        while not agent.problems() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(p.startswith("task poll:bad crashed") and "a bug in the poll path" in p
                   for p in agent.problems()), agent.problems()
        crashes = agent.metrics.registry.get_sample_value(
            "shopfloor_edge_task_crashes_total", {"task": "poll"})
        assert crashes == 2
        # polled again after the backoff, its stream gap-free from seq 0
        rec.wait_for(lambda: len(rec.payloads("/bad/telemetry")) >= 3, 30)
        seqs = [s["seq"] for s in rec.payloads("/bad/telemetry")]
        assert seqs == list(range(len(seqs)))
        good = [s["seq"] for s in rec.payloads("/good/telemetry")]
        assert good == list(range(len(good)))
    finally:
        server.stop()
