"""Faults with real services: kill -9 of the collector, InfluxDB down for 30 s, a
mosquitto restart. Each time, every seq ends up in InfluxDB exactly once and no sample
is reported lost."""

from __future__ import annotations

import time

import pytest

from tests.collector.helpers import Stream, metric, seqs_stored, wait_for
from tests.harness.plants import example_plant_for
from tests.harness.processes import ComponentProcess, health_url

MACHINES = ["press1", "weld1", "paint1", "pack1"]


def assert_all_stored_once(influx, database: str, last_seq: int, timeout_s: float = 30) -> None:
    for machine in MACHINES:
        wait_for(lambda m=machine: len(seqs_stored(influx, database, m)) >= last_seq, timeout_s)
        assert seqs_stored(influx, database, machine) == list(range(1, last_seq + 1)), machine


def test_kill_9_mid_stream_loses_and_doubles_nothing(mosquitto, influxdb, tmp_path):
    from shopfloor.shared.loader import load_plant

    plant_file = example_plant_for(tmp_path, mosquitto.port, influxdb.url)
    plant = load_plant(plant_file)
    port = plant.collector.metrics_port
    collector = ComponentProcess("collector", ["collector", str(plant_file)], tmp_path,
                                 healthy=health_url(port)).start()
    stream = Stream(plant, mosquitto.port, MACHINES, period_s=0.005)
    try:
        time.sleep(2.0)
        collector.kill()  # SIGKILL: no flush, no acks of the batch in hand
        time.sleep(1.0)
        collector.start()
        time.sleep(1.5)
        last = stream.stop()
        assert_all_stored_once(influxdb, plant.database.database, last)
        assert metric(port, "shopfloor_collector_lost_samples") == 0
        assert metric(port, "shopfloor_collector_missing_samples") == 0
        wait_for(lambda: metric(port, "shopfloor_collector_pending_unacked") == 0)
    finally:
        collector.stop()
    assert last > 400


@pytest.mark.slow
def test_influxdb_down_30s_loses_nothing(mosquitto, own_influxdb, make_plant, run_collector):
    plant = make_plant(mosquitto.port, own_influxdb.url)
    collector = run_collector(plant)
    stream = Stream(plant, mosquitto.port, MACHINES, period_s=0.02)
    time.sleep(1.5)
    own_influxdb.kill()
    outage_started = time.monotonic()
    wait_for(lambda: not collector.health()[0], 10)
    pending_during = wait_for(lambda: collector.pending > 200 and collector.pending, 20)
    time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
    own_influxdb.start()
    time.sleep(1.0)
    last = stream.stop()
    assert_all_stored_once(own_influxdb, plant.database.database, last, timeout_s=40)
    ok, detail = wait_for(lambda: (h := collector.health())[0] and h, 20)
    assert detail["lost_samples"] == 0 and detail["dead_letters"] == 0
    assert detail["missing_samples"] == 0
    assert pending_during > 200  # nothing was acknowledged while InfluxDB was down
    wait_for(lambda: collector.pending == 0)


def test_mosquitto_restart_loses_nothing(own_mosquitto, influxdb, make_plant, run_collector):
    plant = make_plant(own_mosquitto.port, influxdb.url)
    collector = run_collector(plant)
    stream = Stream(plant, own_mosquitto.port, MACHINES, period_s=0.005)
    time.sleep(1.5)
    own_mosquitto.restart()  # SIGTERM: mosquitto saves its persistence file, then starts again
    time.sleep(2.5)
    last = stream.stop()
    assert_all_stored_once(influxdb, plant.database.database, last)
    wait_for(lambda: collector.health()[0], 20)
    detail = collector.health()[1]
    assert detail["lost_samples"] == 0 and detail["missing_samples"] == 0
