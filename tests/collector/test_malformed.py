"""Thousands of malformed payloads (hypothesis): random bytes, wrong types, missing
fields, huge values, unknown machines, wrong lines. Each is dead-lettered with the right
reason and counted; the collector stays healthy and keeps storing good data."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings

from shopfloor.collector.messages import Reason
from shopfloor.shared import topics
from tests.collector.helpers import (
    Listener,
    Publisher,
    seqs_stored,
    telemetry,
    telemetry_topic,
    wait_for,
)
from tests.collector.strategies import Malformed, malformed

EXAMPLES = 2000


def test_malformed_payloads_are_dead_lettered_and_good_data_still_stored(
    mosquitto, influxdb, make_plant, run_collector
):
    plant = make_plant(mosquitto.port, influxdb.url)
    db = plant.database.database
    listener = Listener(mosquitto.port, topics.dead_letter_topic(plant.site.id, "collector"))
    collector = run_collector(plant)
    pub = Publisher(mosquitto.port)
    sent: Counter[Reason] = Counter()
    good_topic = telemetry_topic(plant, "press1")
    good_seq = iter(range(1, 10**6))

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(malformed(plant))
    def publish(item: Malformed) -> None:
        topic, payload, reason = item
        pub.client.publish(topic, payload, qos=1)
        sent[reason] += 1
        if sum(sent.values()) % 50 == 0:  # good data interleaved with the bad
            pub.client.publish(good_topic, telemetry(plant, "press1", next(good_seq)).to_json(),
                               qos=1)

    try:
        publish()
        last_good = next(good_seq)
        pub.publish(good_topic, telemetry(plant, "press1", last_good).to_json())
    finally:
        pub.close()
    total = sum(sent.values())
    assert total >= 1000
    registry = collector.metrics.registry

    def dead(reason: Reason) -> float:
        value = registry.get_sample_value("shopfloor_collector_dead_letters_total",
                                          {"reason": reason.value})
        return value or 0.0

    wait_for(lambda: sum(dead(r) for r in Reason) >= total, 60)
    assert {r: dead(r) for r in sent} == {r: float(n) for r, n in sent.items()}
    assert sum(dead(r) for r in Reason) == total
    wait_for(lambda: len(listener.messages) >= total, 30)
    listener.close()
    wait_for(lambda: len(seqs_stored(influxdb, db, "press1")) >= last_good)
    assert seqs_stored(influxdb, db, "press1") == list(range(1, last_good + 1))
    ok, detail = collector.health()
    assert ok, detail
    assert registry.get_sample_value("shopfloor_collector_lost_samples",
                                     {"machine": "press1"}) in (None, 0.0)
