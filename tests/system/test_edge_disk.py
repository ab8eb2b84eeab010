"""The edge's disk fills up while the whole chain runs (real sim, edge, mosquitto,
collector, InfluxDB). The outbox file is capped with `queue.max_bytes` (SQLite's
max_page_count: commits fail with SQLITE_FULL, exactly as on a full filesystem) and the
broker is down, so the outbox cannot drain. Nothing is lost silently: the edge says why
it is unhealthy (/healthz and its status message), keeps a bounded backlog in memory,
drops and counts the rest with their seqs used, and the collector counts exactly these
as lost. When space returns (the broker is back, PUBACKs free the file) the edge is
healthy again and the data flows."""

from __future__ import annotations

import time
from typing import Any

from shopfloor.shared import topics
from tests.collector.helpers import wait_for
from tests.edge.conftest import Recorder
from tests.system.chain import Chain
from tests.system.report import record

MAX_BYTES = 65_536


def outbox_problem(chain: Chain) -> str | None:
    problems = chain.status("edge").get("problems") or []
    return next((p for p in problems if p.startswith("outbox:")), None)


def test_disk_full_is_reported_counted_exactly_and_recovered(
    tmp_path: Any, own_mosquitto: Any, influxdb: Any
) -> None:
    chain = Chain(tmp_path, own_mosquitto, influxdb, max_bytes=MAX_BYTES)
    chain.start()
    status = Recorder(own_mosquitto.port, topics.status_topic(chain.plant.site.id,
                                                                chain.agent.id))
    status.client.reconnect_delay_set(1, 1)
    try:
        wait_for(chain.healthy, 30)
        own_mosquitto.stop()
        problem = wait_for(lambda: outbox_problem(chain), 30)
        assert "full" in problem, problem
        assert chain.health()["edge"] is None  # /healthz answers 503

        def unwritable() -> float:
            return chain.edge_metric_labelled("shopfloor_edge_dropped_total",
                                              reason="outbox_unwritable")

        wait_for(lambda: unwritable() >= 20, 60)
        own_mosquitto.start()
        restored = time.monotonic()
        wait_for(chain.healthy, 60)  # 200: the outbox takes commits again
        recovery_s = time.monotonic() - restored
        dropped = int(unwritable())
        assert chain.edge_metric_labelled("shopfloor_edge_dropped_total",
                                          reason="queue_full") == 0
        audit = chain.audit(expected_missing=dropped, timeout_s=60)
        assert audit.missing == dropped and audit.duplicated == 0, (dropped, audit)

        def collector_counted() -> float:
            return (chain.collector_metric("shopfloor_collector_lost_samples")
                    + chain.collector_metric("shopfloor_collector_missing_samples"))

        wait_for(lambda: collector_counted() == dropped, 30)
        reported = status.wait_for(lambda: [s for s in status.payloads("status")
                                            if any("outbox" in p for p in s.get("problems", []))])
        assert "full" in reported[0]["problems"][0]
        status.wait_for(lambda: "problems" not in status.payloads("status")[-1])
        chain.assert_flowing(expected_missing=dropped)
        record("fault", scenario="edge disk full",
               injected=f"outbox capped at {MAX_BYTES} B (SQLITE_FULL), mosquitto down",
               produced=audit.produced, stored=audit.stored, missing=audit.missing,
               duplicated=audit.duplicated, recovery_s=round(recovery_s, 1),
               edge_dropped=dropped, collector_lost=collector_counted())
    finally:
        status.close()
        chain.stop()
