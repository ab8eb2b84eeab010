"""Start-up with neither the broker nor InfluxDB reachable: clear errors, /healthz 503,
no exit; once both come up the collector connects and stores by itself."""

from __future__ import annotations

import logging
import time

import httpx

from shopfloor.collector.service import Collector
from tests.collector.helpers import Publisher, seqs_stored, telemetry, telemetry_topic, wait_for
from tests.harness.services import InfluxDB, Mosquitto


def test_waits_for_broker_and_database_with_clear_errors(tmp_path, make_plant, caplog):
    broker, influx = Mosquitto(tmp_path / "mq"), InfluxDB(tmp_path / "influx")  # not started
    plant = make_plant(broker.port, influx.url)
    caplog.set_level(logging.INFO, logger="shopfloor.collector")
    collector = Collector(plant).start(metrics_port=0)
    assert collector.status is not None
    healthz = f"http://127.0.0.1:{collector.status.port}/healthz"
    try:
        time.sleep(2.5)
        reply = httpx.get(healthz)
        assert reply.status_code == 503
        assert reply.json()["broker_connected"] is False
        assert reply.json()["database_up"] is False
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(f"broker 127.0.0.1:{broker.port}: cannot connect" in e for e in errors)
        assert any(influx.url in e and "Connection refused" in e for e in errors)
        influx.start()
        broker.start()
        wait_for(lambda: httpx.get(healthz).status_code == 200, 30)
        assert collector.wait_ready(10)
        pub = Publisher(broker.port)
        pub.publish(telemetry_topic(plant, "press1"), telemetry(plant, "press1", 1).to_json())
        pub.close()
        wait_for(lambda: seqs_stored(influx, plant.database.database, "press1") == [1])
        assert any("recovered" in r.getMessage() for r in caplog.records)
    finally:
        collector.stop()
        broker.stop()
        influx.stop()


def test_messages_before_seq_recovery_are_held_then_accounted(mosquitto, own_influxdb,
                                                              make_plant):
    """A restart while InfluxDB is down: the broker delivers the session's messages at
    once, before the collector can read back the last stored seq of each stream. They
    are held (received, not acknowledged, not accounted), then stored and accounted once
    InfluxDB is back, against the recovered seq: a repeat of the last stored sample is a
    duplicate and a gap right after it is missing (accounted before recovery, both would
    pass unseen as the start of a new stream)."""
    plant = make_plant(mosquitto.port, own_influxdb.url)
    db, topic = plant.database.database, telemetry_topic(plant, "press1")
    first = Collector(plant).start(metrics_port=0)
    assert first.wait_ready(30)
    pub = Publisher(mosquitto.port)
    try:
        pub.publish_many([(topic, telemetry(plant, "press1", s).to_json()) for s in range(1, 6)])
        wait_for(lambda: seqs_stored(own_influxdb, db, "press1") == [1, 2, 3, 4, 5])
        first.stop()  # the session stays with the broker
        own_influxdb.kill()
        second = Collector(plant).start(metrics_port=0)
        try:
            wait_for(lambda: second.subscriber.connected)
            pub.publish_many([(topic, telemetry(plant, "press1", s).to_json())
                              for s in (5, 7, 8, 9, 10)])  # 5 again; 6 never comes
            wait_for(lambda: second.subscriber.received >= 5)
            assert second.pending == second.subscriber.received  # held, none acknowledged
            own_influxdb.start()
            wait_for(lambda: seqs_stored(own_influxdb, db, "press1")
                     == [1, 2, 3, 4, 5, 7, 8, 9, 10], 40)
            ok, detail = wait_for(lambda: (h := second.health())[0] and h, 20)
            assert (detail["duplicate_samples"], detail["missing_samples"],
                    detail["lost_samples"], detail["late_samples"]) == (1, 1, 0, 0)
            wait_for(lambda: second.pending == 0)
        finally:
            second.stop()
    finally:
        pub.close()
