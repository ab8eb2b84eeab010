"""`state_duration` written by the collector against the real mosquitto and InfluxDB 1.6:
each state change stores the finished state's duration, a retained re-send stores
nothing new, and a restarted collector still ends the state that was open before it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shopfloor.collector.service import Collector
from shopfloor.shared import schema, topics
from shopfloor.shared.enums import MachineState
from shopfloor.shared.plant import Plant
from tests.collector.helpers import T0, Publisher, state, wait_for

RUNNING, STOPPED, IDLE = MachineState.RUNNING, MachineState.STOPPED, MachineState.IDLE
T0_MS = int(T0.timestamp() * 1000)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def state_topic(plant: Plant, machine: str) -> str:
    line = plant.machines[machine].line
    return topics.machine_topic(plant.site.id, line, machine, topics.STATE)


def durations_stored(influx: Any, database: str) -> list[tuple[int, str, str, str, float]]:
    """(time ms, machine, state, reason, duration_s) of every state_duration point."""
    series = influx.query(
        f'SELECT "{schema.DURATION_FIELD}" FROM "{schema.STATE_DURATION}" '
        'GROUP BY "machine", "state", "reason"', database=database)
    return sorted((row[0], s["tags"]["machine"], s["tags"]["state"], s["tags"]["reason"], row[1])
                  for s in series for row in s["values"])


def points_written(collector: Collector) -> float:
    return collector.metrics.total(collector.metrics.points_written)


def settle(collector: Collector, received: int) -> None:
    """Wait until `received` messages arrived and every one's batch is written."""
    wait_for(lambda: collector.subscriber.received >= received and collector.pending == 0)


def test_each_state_change_stores_the_finished_state(mosquitto, influxdb, make_plant,
                                                     run_collector):
    plant = make_plant(mosquitto.port, influxdb.url)
    db, topic = plant.database.database, state_topic(plant, "press1")
    collector = run_collector(plant)
    pub = Publisher(mosquitto.port)
    try:
        for payload in (state(RUNNING, at(0)), state(STOPPED, at(30), "jam")):
            pub.publish(topic, payload.to_json(), retain=True)
        settle(collector, 2)
        assert durations_stored(influxdb, db) == [(T0_MS, "press1", "running", "none", 30.0)]
        before = points_written(collector)
        # the edge re-sends its retained state after a reconnect: same since, newer ts
        resent = state(STOPPED, at(30), "jam").model_copy(update={"ts": at(40)})
        pub.publish(topic, resent.to_json(), retain=True)
        settle(collector, 3)
        assert points_written(collector) == before + 1  # its machine_state point only
        assert durations_stored(influxdb, db) == [(T0_MS, "press1", "running", "none", 30.0)]
        for payload in (state(IDLE, at(50), "not_in_the_plant"), state(RUNNING, at(80)),
                        state(STOPPED, at(70), "jam")):  # the last one is older: ignored
            pub.publish(topic, payload.to_json(), retain=True)
        settle(collector, 6)
    finally:
        pub.close()
    assert durations_stored(influxdb, db) == [
        (T0_MS, "press1", "running", "none", 30.0),
        (T0_MS + 30_000, "press1", "stopped", "jam", 20.0),
        (T0_MS + 50_000, "press1", "idle", "other", 30.0),
    ]
    rows = influxdb.query(f'SELECT * FROM "{schema.STATE_DURATION}"', database=db)[0]
    first = dict(zip(rows["columns"], rows["values"][0], strict=True))
    assert (first["site"], first["line"]) == (plant.site.id, "line1")
    keys = influxdb.query(f'SHOW FIELD KEYS FROM "{schema.STATE_DURATION}"', database=db)
    assert keys[0]["values"] == [[schema.DURATION_FIELD, "float"]]


def test_restarted_collector_ends_the_state_open_before_it(mosquitto, influxdb, make_plant):
    """The open state is recovered from the last machine_state point: the first change
    after the restart stores its duration (without recovery it would store nothing)."""
    plant = make_plant(mosquitto.port, influxdb.url)
    db, topic = plant.database.database, state_topic(plant, "press1")
    pub = Publisher(mosquitto.port)
    try:
        first = Collector(plant).start(metrics_port=0)
        try:
            assert first.wait_ready(30)
            for payload in (state(RUNNING, at(0)), state(STOPPED, at(30), "jam")):
                pub.publish(topic, payload.to_json(), retain=True)
            settle(first, 2)
        finally:
            first.stop()
        assert durations_stored(influxdb, db) == [(T0_MS, "press1", "running", "none", 30.0)]
        second = Collector(plant).start(metrics_port=0)
        try:
            assert second.wait_ready(30)
            pub.publish(topic, state(RUNNING, at(100)).to_json(), retain=True)
            settle(second, 1)
        finally:
            second.stop()
    finally:
        pub.close()
    assert durations_stored(influxdb, db) == [
        (T0_MS, "press1", "running", "none", 30.0),
        (T0_MS + 30_000, "press1", "stopped", "jam", 70.0),
    ]
