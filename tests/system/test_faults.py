"""Faults while the whole chain runs (simulator -> edge -> mosquitto -> collector ->
InfluxDB, all real processes, one chain shared by this module). After each fault: every
sequence number the edge produced is in InfluxDB exactly once, both components answer
/healthz, and new data flows again. Each result is recorded for docs/reliability.md."""

from __future__ import annotations

import time

import pytest

from tests.collector.helpers import wait_for
from tests.system.chain import POLL_INTERVAL_S, Chain
from tests.system.report import record

OUTAGE_S = 60.0
FAULTY = "press1"


def finish(chain: Chain, scenario: str, injected: str, restored_at: float,
           **measured: float | int | str) -> None:
    """Recovery time, then the exactly-once audit and the health check; record it."""
    recovery_s = chain.recover(restored_at)
    chain.assert_flowing()
    audit = chain.audit()
    health = chain.health()
    record("fault", scenario=scenario, injected=injected, produced=audit.produced,
           stored=audit.stored, missing=audit.missing, duplicated=audit.duplicated,
           recovery_s=round(recovery_s, 1),
           collector_lost=chain.collector_metric("shopfloor_collector_lost_samples"),
           redelivered=chain.collector_metric("shopfloor_collector_duplicate_samples_total"),
           **measured)
    assert audit.exactly_once, audit
    assert health["edge"] is not None and health["collector"] is not None, health
    assert health["collector"]["lost_samples"] == 0, health


def test_mosquitto_restart(healthy_chain: Chain) -> None:
    chain = healthy_chain
    chain.broker.restart()  # SIGTERM: mosquitto saves its persistence file, then starts
    finish(chain, "mosquitto restarted", "SIGTERM + start of mosquitto", time.monotonic())


@pytest.mark.slow
def test_mosquitto_down_60s(healthy_chain: Chain) -> None:
    chain = healthy_chain
    chain.broker.stop()
    wait_for(lambda: chain.health()["edge"] is None, 15)  # the edge notices: 503
    time.sleep(OUTAGE_S - 2)
    queued = chain.produced()
    depth = chain.status("edge")["queue_depth"]
    chain.broker.start()
    restored = time.monotonic()
    assert depth >= len(chain.machines) * (OUTAGE_S - 15) / POLL_INTERVAL_S, depth
    finish(chain, "mosquitto down 60 s", "mosquitto stopped for 60 s", restored,
           edge_queue_peak=int(depth))
    assert all(n > 0 for n in queued.values())


@pytest.mark.slow
def test_influxdb_down_60s(healthy_chain: Chain) -> None:
    chain = healthy_chain
    chain.influx.kill()
    wait_for(lambda: chain.health()["collector"] is None, 15)
    time.sleep(OUTAGE_S - 2)
    pending = chain.status("collector")["pending_unacked"]
    chain.influx.start()
    restored = time.monotonic()
    # nothing was acknowledged while InfluxDB was down (the rest waits in the broker,
    # which sends a session at most max_inflight_messages unacknowledged messages)
    assert pending > 0, pending
    finish(chain, "InfluxDB down 60 s", "influxd killed (-9), restarted after 60 s", restored,
           collector_unacked_peak=int(pending))


def test_edge_kill_9_and_restart(healthy_chain: Chain) -> None:
    chain = healthy_chain
    chain.edge.kill()
    time.sleep(1.0)
    chain.edge.start()
    finish(chain, "edge agent kill -9", "SIGKILL of `shopfloor edge`, restarted after 1 s",
           time.monotonic())


def test_collector_kill_9_and_restart(healthy_chain: Chain) -> None:
    chain = healthy_chain
    chain.collector.kill()
    time.sleep(1.0)
    chain.collector.start()
    finish(chain, "collector kill -9",
           "SIGKILL of `shopfloor collector`, restarted after 1 s", time.monotonic())


@pytest.mark.parametrize("mode", ["silent", "slow:0.25", "exception"])
def test_modbus_device_fault_others_keep_their_rate(healthy_chain: Chain, mode: str) -> None:
    chain = healthy_chain
    chain.set_fault(FAULTY, mode)
    time.sleep(0.8)
    start = time.time()
    time.sleep(3.0)
    end = time.time()
    chain.audit()  # everything polled so far is stored
    counts = chain.samples_between(start, end)
    chain.set_fault(FAULTY, "normal")
    restored = time.monotonic()
    expected = (end - start) / POLL_INTERVAL_S
    others = {m: n for m, n in counts.items() if m != FAULTY and m in chain.polled}
    failures = {
        kind: chain.edge_metric_labelled("shopfloor_edge_poll_failures_total",
                                         machine=FAULTY, kind=kind)
        for kind in ("timeout", "exception")
    }
    finish(chain, f"Modbus device {mode.split(':')[0]}", f"{FAULTY} set to `{mode}` for ~4 s",
           restored, faulty_rate=round(counts[FAULTY] / (end - start), 1),
           others_rate_min=round(min(others.values()) / (end - start), 1),
           nominal_rate=round(1 / POLL_INTERVAL_S, 1))
    assert all(n >= 0.9 * expected - 1 for n in others.values()), (counts, expected)
    if mode == "exception":
        assert failures["exception"] > 0
    elif mode == "silent":
        assert failures["timeout"] > 0
