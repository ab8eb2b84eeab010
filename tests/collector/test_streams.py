"""Loss accounting in the collector over the real mosquitto and InfluxDB: a late block
after its gap was counted lost, a seq at 2^63-1, and a new stream epoch — across a
collector restart, which recovers the stream (seq and epoch) from InfluxDB."""

from __future__ import annotations

import datetime as dt

from shopfloor.collector.service import Collector
from shopfloor.shared import schema
from tests.collector.helpers import T0, Publisher, telemetry, telemetry_topic, wait_for

TOP = 2**63 - 1


def counts(collector: Collector) -> tuple[int, int, int, int]:
    d = collector.health()[1]
    return (d["lost_samples"], d["late_samples"], d["duplicate_samples"], d["stream_restarts"])


def send(pub: Publisher, plant, seqs, epoch: int | None = None, at: int | None = None) -> None:
    topic = telemetry_topic(plant, "press1")
    items = []
    for seq in seqs:
        ts = T0 + dt.timedelta(seconds=at if at is not None else seq)
        sample = telemetry(plant, "press1", 0, ts).model_copy(update={"seq": seq, "epoch": epoch})
        items.append((topic, sample.to_json()))
    pub.publish_many(items)


def last_stats(influx, plant) -> dict:
    query = (f"SELECT last(lost) AS lost, last(late) AS late, last(duplicates) AS dup"
             f" FROM {schema.COLLECTOR_STATS}")
    series = influx.query(query, database=plant.database.database)
    if not series:
        return {}
    return dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))


def test_a_late_block_reads_zero_lost_ten_late_zero_duplicates(
    mosquitto, influxdb, make_plant, run_collector
):
    plant = make_plant(mosquitto.port, influxdb.url, stats_period_s=0.3)
    collector = run_collector(plant)
    collector.batcher.tracker.grace_s = 0.0  # the gap is confirmed lost at once
    pub = Publisher(mosquitto.port)
    try:
        send(pub, plant, [*range(1, 11), *range(21, 31)])
        wait_for(lambda: counts(collector) == (10, 0, 0, 0))
        send(pub, plant, range(11, 21))  # the block comes after all
        wait_for(lambda: counts(collector) == (0, 10, 0, 0))
        send(pub, plant, [15])  # the same seq a second time is a duplicate
        wait_for(lambda: counts(collector) == (0, 10, 1, 0))
    finally:
        pub.close()
    wait_for(lambda: last_stats(influxdb, plant).get("dup") == 1)
    stored = last_stats(influxdb, plant)
    assert (stored["lost"], stored["late"]) == (0, 10)


def test_top_seq_and_a_new_epoch_are_restarts_not_losses(
    mosquitto, influxdb, make_plant, run_collector
):
    plant = make_plant(mosquitto.port, influxdb.url)
    first = Collector(plant).start(metrics_port=0)
    assert first.wait_ready(30)
    first.batcher.tracker.grace_s = 0.0
    pub = Publisher(mosquitto.port)
    try:
        send(pub, plant, range(1, 101))
        send(pub, plant, [TOP], at=250)  # stored: recovery must not take max(seq)
        send(pub, plant, range(101, 201))
        wait_for(lambda: first.health()[1]["values_written"] > 0 and counts(first)[3] == 1)
        send(pub, plant, range(0, 50), epoch=7, at=300)  # a new outbox: seq from 0
        wait_for(lambda: counts(first)[3] == 2 and first.health()[1]["pending_unacked"] == 0)
        first.batcher.expire_holes()
        assert counts(first) == (0, 0, 0, 2)
        first.stop()
        collector = run_collector(plant)  # recovers seq 49 of epoch 7 from InfluxDB
        collector.batcher.tracker.grace_s = 0.0
        send(pub, plant, range(50, 60), epoch=7, at=400)
        send(pub, plant, [45], epoch=7, at=401)  # a real repeat
    finally:
        pub.close()
    wait_for(lambda: collector.health()[1]["pending_unacked"] == 0
             and counts(collector)[2] == 1)
    collector.batcher.expire_holes()
    assert counts(collector) == (0, 0, 1, 0)
