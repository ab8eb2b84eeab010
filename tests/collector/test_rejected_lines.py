"""InfluxDB refusing some lines of a batch (HTTP 400 partial write: field type conflict)
must not block the stream: the batch is split, the bad lines dead-lettered, the rest
stored, and later batches flow."""

from __future__ import annotations

import json

import httpx

from shopfloor.collector.encode import to_ms
from shopfloor.collector.writer import write_splitting
from shopfloor.shared import topics
from shopfloor.shared.enums import MachineState
from shopfloor.shared.influx import V1Writer
from tests.collector.helpers import (
    T0,
    Listener,
    Publisher,
    seqs_stored,
    state,
    telemetry,
    telemetry_topic,
    wait_for,
)


def test_write_splitting_finds_exactly_the_bad_lines(influxdb, make_plant):
    plant = make_plant(1883, influxdb.url)
    writer = V1Writer(plant.database)
    writer.prepare()
    good = [f"m,machine=a x={i}.5 {1_700_000_000_000 + i}" for i in range(37)]
    bad = ['m,machine=a x="text" 1700000000100', "m,machine=a x=1i 1700000000200"]
    lines = good[:10] + bad[:1] + good[10:30] + bad[1:] + good[30:]
    rejected = write_splitting(writer, lines)
    writer.close()
    assert [line for line, _ in rejected] == bad
    assert all("conflict" in reason for _, reason in rejected)
    count = influxdb.query("SELECT count(x) FROM m", database=plant.database.database)
    assert count[0]["values"][0][1] == len(good)


def test_conflicting_state_line_is_dead_lettered_and_telemetry_stored(
    mosquitto, influxdb, make_plant, run_collector
):
    plant = make_plant(mosquitto.port, influxdb.url)
    db = plant.database.database
    listener = Listener(mosquitto.port, topics.dead_letter_topic(plant.site.id, "collector"))
    collector = run_collector(plant)
    # Someone stored machine_state.code as a string in this shard: our integer code conflicts.
    conflict = f"machine_state,machine=other code=\"x\" {to_ms(T0)}"
    httpx.post(f"{influxdb.url}/write", params={"db": db, "precision": "ms"},
               content=conflict).raise_for_status()
    pub = Publisher(mosquitto.port)
    state_topic = topics.machine_topic(plant.site.id, "line1", "press1", topics.STATE)
    try:
        pub.publish_many(
            [(telemetry_topic(plant, "press1"), telemetry(plant, "press1", s).to_json())
             for s in range(1, 6)]
            + [(state_topic, state(MachineState.RUNNING, T0).to_json())]
            + [(telemetry_topic(plant, "press1"), telemetry(plant, "press1", s).to_json())
               for s in range(6, 11)]
        )
    finally:
        pub.close()
    wait_for(lambda: len(seqs_stored(influxdb, db, "press1")) == 10)
    assert seqs_stored(influxdb, db, "press1") == list(range(1, 11))
    letters = wait_for(lambda: [json.loads(m.payload) for m in listener.messages])
    listener.close()
    assert len(letters) == 1
    assert letters[0]["reason"].startswith("rejected_by_database: ")
    assert letters[0]["payload"].startswith("machine_state,")
    assert collector.health()[0]
