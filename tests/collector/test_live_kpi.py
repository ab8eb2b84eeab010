"""The collector plugs the live KPI engine in (collector/live_kpi.py): the engine gets the
written batches and its KPIs leave through the collector's own MQTT publish path,
retained, so a client that subscribes later still gets the current KPIs."""

from __future__ import annotations

import json

from shopfloor.collector.live_kpi import attach_live_kpi
from shopfloor.collector.service import Collector
from shopfloor.shared import topics
from tests.collector.helpers import Listener, Publisher, telemetry, telemetry_topic, wait_for


def test_live_kpis_are_published_retained_through_the_collector(
        mosquitto, influxdb, make_plant):
    plant = make_plant(mosquitto.port, influxdb.url, kpi_period_s=1.0)
    site = plant.site.id
    kpi_topic = topics.machine_topic(site, "line1", "press1", topics.KPI)
    collector = Collector(plant)
    worker = attach_live_kpi(collector)
    collector.start(metrics_port=0)
    try:
        assert collector.wait_ready(30)
        pub = Publisher(mosquitto.port)
        pub.publish_many([(telemetry_topic(plant, "press1"),
                           telemetry(plant, "press1", seq).to_json()) for seq in (1, 2, 3)])
        pub.close()
        wait_for(lambda: worker.live.watermark is not None)
        live = Listener(mosquitto.port, kpi_topic)
        wait_for(lambda: live.messages)
        live.close()
    finally:
        collector.stop()
    later = Listener(mosquitto.port, kpi_topic)  # subscribes after the collector stopped
    wait_for(lambda: later.messages)
    later.close()
    message = later.messages[0]
    assert message.retain
    assert json.loads(message.payload)["machine"] == "press1"
