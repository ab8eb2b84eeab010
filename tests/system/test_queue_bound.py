"""The edge's SQLite outbox filled to its bound (agent.queue.max_samples = 100, broker
down) while the whole chain runs. The stated policy (drop_oldest, the default: see
`shopfloor.shared.plant.Queue`) holds: the queue never exceeds its bound, the samples
that go are the oldest ones, each is counted by the edge (metric + log) and reported as
lost by the collector, and every other sample is stored exactly once. (The edge's count
may exceed the real loss by samples that were in flight when the broker went away and had
reached it: the outbox deletes them without knowing.)"""

from __future__ import annotations

import time
from typing import Any

from tests.collector.helpers import seqs_stored, wait_for
from tests.system.chain import Chain
from tests.system.report import record

BOUND = 100


def contiguous(values: set[int]) -> bool:
    return not values or max(values) - min(values) + 1 == len(values)


def gone_before_restore(chain: Chain, before_restore: dict[str, int]) -> dict[str, set[int]]:
    """Per machine, the seqs produced before the broker came back that are not stored."""
    stored = {m: set(seqs_stored(chain.influx, chain.database, m)) for m in before_restore}
    return {m: set(range(last + 1)) - stored[m] for m, last in before_restore.items()}


def settle(chain: Chain, before_restore: dict[str, int], timeout_s: float = 90) -> None:
    """Wait until the backlog produced before the restore is in: the edge sends it while
    it also sends new samples, so for a while a backlog sample still on its way looks like
    a second gap. A real second gap never closes: the assertions below then fail. (At
    load 5-6 the backlog took longer than the 30 s this waited before: a flaky failure.)"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(contiguous(g) for g in gone_before_restore(chain, before_restore).values()):
            return
        time.sleep(0.5)


def test_outbox_full_drops_the_oldest_and_reports_it(
    tmp_path: Any, own_mosquitto: Any, influxdb: Any
) -> None:
    chain = Chain(tmp_path, own_mosquitto, influxdb, max_samples=BOUND, when_full="drop_oldest")
    chain.start()
    try:
        wait_for(chain.healthy, 30)
        own_mosquitto.stop()
        wait_for(lambda: chain.health()["edge"] is None, 15)
        wait_for(lambda: chain.edge_metric("shopfloor_edge_dropped_total") >= 40, 30)
        depth = chain.edge_metric("shopfloor_edge_queue_depth")
        before_restore = chain.produced()
        own_mosquitto.start()
        restored = time.monotonic()
        wait_for(chain.healthy, 30)
        wait_for(lambda: chain.edge_metric("shopfloor_edge_queue_depth") < 20, 30)
        settle(chain, before_restore)
        dropped = int(chain.edge_metric_labelled("shopfloor_edge_dropped_total",
                                                 reason="queue_full"))
        audit = chain.audit(expected_missing=dropped, timeout_s=15)
        recovery_s = time.monotonic() - restored
        # the collector's view of the gaps: open ones (missing, within its grace period)
        # and confirmed ones (lost)
        lost = (chain.collector_metric("shopfloor_collector_lost_samples")
                + chain.collector_metric("shopfloor_collector_missing_samples"))
        record("fault", scenario="edge queue full", injected=f"agent.queue.max_samples ="
               f" {BOUND}, when_full = drop_oldest; mosquitto down until > 40 dropped",
               produced=audit.produced, stored=audit.stored, missing=audit.missing,
               duplicated=audit.duplicated, recovery_s=round(recovery_s, 1),
               edge_dropped=dropped, collector_lost=lost, edge_queue_peak=int(depth))
        assert depth <= BOUND
        assert dropped >= 40
        # `dropped` counts samples deleted from the outbox; one in flight when the broker
        # went away may have reached it already (its PUBACK lost): at most `inflight` such
        assert 0 <= dropped - audit.missing <= chain.agent.publish_inflight, (dropped, audit)
        assert audit.missing > 0 and audit.duplicated == 0, audit
        assert lost == audit.missing  # the collector sees the same gaps and counts them
        for machine, gone in gone_before_restore(chain, before_restore).items():
            assert contiguous(gone), (machine, sorted(gone))  # the oldest went, in one run
            assert not gone or max(gone) < before_restore[machine]  # the newest were kept
        assert "outbox full" in chain.edge.log_path.read_text()
        chain.assert_flowing(expected_missing=audit.missing)
    finally:
        chain.stop()
