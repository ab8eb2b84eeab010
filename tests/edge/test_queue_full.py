"""A broker outage longer than the outbox holds: with drop_oldest the oldest samples go,
are counted, and show downstream as a gap at the start of each stream — the rest
arrives complete."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.edge.conftest import machine_spec, plant_data
from tests.harness.services import free_port


def test_drop_oldest_during_an_outage(
    own_mosquitto: Any,
    unique_site: str,
    modbus_server: Any,
    tmp_path: Any,
    run_agent: Any,
    recorder_factory: Any,
) -> None:
    machines = {f"m{i}": machine_spec(modbus_server.port, i, poll_interval_s=0.02) for i in (1, 2)}
    metrics_port = free_port()
    data = plant_data(
        unique_site,
        own_mosquitto.port,
        machines,
        tmp_path / "state",
        queue={"max_samples": 100, "when_full": "drop_oldest"},
        metrics_port=metrics_port,
    )
    rec = recorder_factory(own_mosquitto.port, f"shopfloor/v1/{unique_site}/+/+/telemetry")
    rec.client.reconnect_delay_set(1, 1)
    own_mosquitto.stop()  # the recorder's session survives (persistence)
    agent = run_agent(data)
    registry = agent.agent.metrics.registry

    def dropped() -> float:
        return (
            registry.get_sample_value("shopfloor_edge_dropped_total", {"reason": "queue_full"}) or 0
        )

    deadline = time.monotonic() + 15
    while dropped() < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dropped() >= 20
    assert registry.get_sample_value("shopfloor_edge_queue_depth") == 100
    health = httpx.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5)
    assert health.status_code == 503 and health.json()["broker_connected"] is False
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert 'shopfloor_edge_dropped_total{reason="queue_full"}' in metrics
    own_mosquitto.start()
    rec.wait_for(lambda: len(rec.payloads("telemetry")) >= 150, timeout_s=20)
    agent.stop()
    time.sleep(0.3)

    missing = 0
    for machine in machines:
        seqs = sorted({t["seq"] for t in rec.payloads(f"/{machine}/telemetry")})
        assert seqs[0] > 0  # the oldest went
        # While the backlog drains, polling goes on into a full outbox: the oldest rows not
        # yet handed to the broker go too, so a later gap is the same policy at work.
        missing += seqs[-1] + 1 - len(seqs)
    assert missing == dropped()  # every sequence number missing was counted as dropped
