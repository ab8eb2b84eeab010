"""Overload degrades, never collapses: with polls made artificially slow (each spins
the agent's event loop thread on the CPU), the agent sheds polls fairly across its
machines, counts every skipped poll (metrics, status payload), says so in one log line
per episode, keeps every machine's seq gap-free and its outbox small, and recovers when
the polls are cheap again. A mechanism test at small scale: no speed is asserted."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from typing import Any

import pytest

from shopfloor.edge.poller import MachinePoller
from shopfloor.shared import topics
from tests.edge.conftest import ModbusServer, machine_spec, plant_data

UNITS = tuple(range(1, 11))
POLL_S = 0.1
SLOW_POLL_S = 0.015  # x 10 machines x 10 polls/s = 1.5 s of loop time per second


def ts(sample: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(sample["ts"]).timestamp()


def test_overload_sheds_fairly_counts_and_recovers(
    mosquitto: Any,
    unique_site: str,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow = threading.Event()
    original = MachinePoller.accept

    def slow_poll(self: MachinePoller, *args: Any) -> bool:
        if slow.is_set():  # CPU work that holds the event loop
            end = time.thread_time() + SLOW_POLL_S
            while time.thread_time() < end:
                pass
        return original(self, *args)

    monkeypatch.setattr(MachinePoller, "accept", slow_poll)
    caplog.set_level(logging.INFO, logger="shopfloor.edge.overload")
    server = ModbusServer(UNITS).start()
    machines = {}
    for unit in UNITS:
        spec = machine_spec(server.port, unit, poll_interval_s=POLL_S)
        spec["connection"].update(gateway=True)
        machines[f"m{unit:02d}"] = spec
    data = plant_data(unique_site, mosquitto.port, machines, tmp_path / "state")
    rec = recorder_factory(mosquitto.port, f"shopfloor/v1/{unique_site}/#")
    status = topics.status_topic(unique_site, "edge1")
    try:
        agent = run_agent(data)
        rec.wait_for(lambda: all(rec.payloads(f"/{m}/telemetry") for m in machines))
        assert rec.payloads(status)[-1]["overloaded"] is False

        slow.set()
        rec.wait_for(lambda: any(s.get("overloaded") for s in rec.payloads(status)), 30)
        window_start = time.time()
        time.sleep(3.0)
        window_end = time.time()
        slow.clear()
        rec.wait_for(lambda: rec.payloads(status)[-1]["overloaded"] is False, 60)

        polled = {
            m: len([t for t in rec.payloads(f"/{m}/telemetry")
                    if window_start <= ts(t) <= window_end])
            for m in machines
        }
        # shed, and fairly: every machine polled, none at more than twice another's rate
        assert sum(polled.values()) < len(machines) * 3.0 / POLL_S * 0.9, polled
        assert min(polled.values()) > 0 and max(polled.values()) <= 2 * min(polled.values()) + 2
        registry = agent.agent.metrics.registry
        shed = {
            m: registry.get_sample_value(
                "shopfloor_edge_polls_skipped_total", {"machine": m, "reason": "shed"}
            )
            for m in machines
        }
        assert all(n and n > 0 for n in shed.values()), shed
        reported = [s for s in rec.payloads(status) if s.get("overloaded")]
        assert reported[0]["polls_skipped"] > 0
        assert registry.get_sample_value("shopfloor_edge_overloaded") == 0.0
        assert registry.get_sample_value("shopfloor_edge_queue_depth") < 500

        episodes = [
            r for r in caplog.records
            if r.name == "shopfloor.edge.overload" and r.levelno >= logging.INFO
        ]
        assert [r.levelno for r in episodes] == [logging.WARNING, logging.INFO], episodes
        assert "shedding polls" in episodes[0].getMessage()
        assert "poll(s) skipped" in episodes[1].getMessage()
        agent.stop()
        for m in machines:  # a shed poll takes no sequence number: no gaps
            seqs = [t["seq"] for t in rec.payloads(f"/{m}/telemetry")]
            assert seqs == list(range(len(seqs))), m
    finally:
        server.stop()


def test_governor_sheds_every_machine_alike_and_reports_one_episode() -> None:
    from shopfloor.edge.overload import CALM_PERIODS, Governor

    changes: list[bool] = []
    backlog = [0]
    gov = Governor(lambda: backlog[0], lambda: True, backlog_limit=100, on_change=changes.append)
    gov.control(0.0, busy=0.2)
    assert gov.ratio == 1.0 and not gov.overloaded
    t = 0.0
    for _ in range(3):  # saturated loop, then a growing outbox while connected
        t += 0.5
        gov.control(t, busy=0.97)
    backlog[0] = 150
    t += 0.5
    gov.control(t, busy=0.2)
    backlog[0] = 300
    t += 0.5
    gov.control(t, busy=0.2)
    assert gov.overloaded and changes == [True] and gov.ratio < 0.4

    credits = [0.0] * 7  # seven machines, 100 ticks each at this ratio
    polled = [0] * 7
    for _ in range(100):
        for i in range(7):
            admitted, credits[i] = gov.admit(credits[i])
            polled[i] += admitted
            if not admitted:
                gov.count_skipped(1)
    assert max(polled) - min(polled) <= 1 and 0 < polled[0] < 100
    assert gov.skipped == 700 - sum(polled)

    backlog[0] = 0
    while gov.overloaded:  # a saw-tooth back to full rate is still the same episode
        t += 0.5
        gov.control(t, busy=0.2)
    assert gov.ratio == 1.0 and changes == [True, False]
    for _ in range(CALM_PERIODS):
        t += 0.5
        gov.control(t, busy=0.2)
    assert changes == [True, False]
