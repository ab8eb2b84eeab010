"""Collector against the real mosquitto and InfluxDB 1.6: what is published is stored,
with the field types of the plant's points, and acknowledged."""

from __future__ import annotations

import json

from shopfloor.collector.encode import FieldKind, field_kind
from shopfloor.shared import topics
from shopfloor.shared.enums import MachineState
from tests.collector.helpers import (
    T0,
    Listener,
    Publisher,
    seqs_stored,
    state,
    telemetry,
    telemetry_topic,
    value_for,
    wait_for,
)

INFLUX_TYPES = {FieldKind.FLOAT: "float", FieldKind.INT: "integer",
                FieldKind.BOOL: "boolean", FieldKind.STRING: "string"}


def test_telemetry_and_state_are_stored_with_plant_types(
    mosquitto, influxdb, make_plant, run_collector
):
    plant = make_plant(mosquitto.port, influxdb.url)
    db = plant.database.database
    collector = run_collector(plant)
    pub = Publisher(mosquitto.port)
    try:
        items = [(telemetry_topic(plant, m), telemetry(plant, m, seq).to_json())
                 for seq in range(1, 51) for m in plant.machines]
        pub.publish_many(items)
        line = plant.machines["press1"].line
        state_topic = topics.machine_topic(plant.site.id, line, "press1", topics.STATE)
        pub.publish(state_topic, state(MachineState.STOPPED, T0, "jam").to_json(), retain=True)
    finally:
        pub.close()
    for machine in plant.machines:
        wait_for(lambda m=machine: len(seqs_stored(influxdb, db, m)) == 50)
        assert seqs_stored(influxdb, db, machine) == list(range(1, 51))

    press = plant.machines["press1"]
    row = influxdb.query("SELECT * FROM telemetry WHERE machine = 'press1' AND \"_seq\" = 7",
                         database=db)[0]
    got = dict(zip(row["columns"], row["values"][0], strict=True))
    assert got["time"] == int((T0.timestamp() + 7) * 1000)
    assert (got["site"], got["line"]) == (plant.site.id, "line1")
    for point in press.points:
        assert got[point.name] == value_for(press, point.name, 7), point.name
    keys = influxdb.query("SHOW FIELD KEYS FROM telemetry", database=db)[0]["values"]
    stored_types = dict(keys)
    for point in press.points:
        assert stored_types[point.name] == INFLUX_TYPES[field_kind(point)], point.name

    states = wait_for(lambda: influxdb.query("SELECT * FROM machine_state", database=db))
    got = dict(zip(states[0]["columns"], states[0]["values"][0], strict=True))
    assert (got["state"], got["reason"], got["machine"]) == ("stopped", "jam", "press1")
    assert got["time"] == int(T0.timestamp() * 1000)

    wait_for(lambda: collector.health()[1]["pending_unacked"] == 0)
    ok, detail = collector.health()
    assert ok and detail["lost_samples"] == 0 and detail["dead_letters"] == 0
    assert detail["values_written"] == sum(
        50 * len(m.points) for m in plant.machines.values()) + 1


def test_bad_quality_points_are_left_out_and_gaps_counted(
    mosquitto, influxdb, make_plant, run_collector
):
    plant = make_plant(mosquitto.port, influxdb.url)
    db = plant.database.database
    collector = run_collector(plant)
    collector.batcher.tracker.grace_s = 0.0  # confirm gaps as lost at once
    topic = telemetry_topic(plant, "weld1")
    first = telemetry(plant, "weld1", 10)
    bad = telemetry(plant, "weld1", 11).model_copy(update={"quality": {"temperature": "bad"}})
    gap = telemetry(plant, "weld1", 15)  # 12, 13, 14 never sent
    pub = Publisher(mosquitto.port)
    try:
        pub.publish_many([(topic, p.to_json()) for p in (first, bad, gap, first)])
    finally:
        pub.close()
    wait_for(lambda: collector.health()[1]["duplicate_samples"] == 1)
    wait_for(lambda: collector.health()[1]["lost_samples"] == 3)
    wait_for(lambda: collector.health()[1]["pending_unacked"] == 0)
    rows = influxdb.query("SELECT temperature, \"_seq\" FROM telemetry", database=db)[0]
    by_seq = {r[2]: r[1] for r in rows["values"]}
    assert by_seq[11] is None and by_seq[10] is not None and set(by_seq) == {10, 11, 15}


def test_point_of_the_wrong_type_is_dead_lettered_and_the_rest_stored(
    mosquitto, influxdb, make_plant, run_collector
):
    plant = make_plant(mosquitto.port, influxdb.url)
    db = plant.database.database
    listener = Listener(mosquitto.port, topics.dead_letter_topic(plant.site.id, "collector"))
    collector = run_collector(plant)
    sample = telemetry(plant, "pack1", 3)
    values = {**sample.values, "state": "running", "nonexistent": 1}
    pub = Publisher(mosquitto.port)
    try:
        pub.publish(telemetry_topic(plant, "pack1"),
                    sample.model_copy(update={"values": values}).to_json())
    finally:
        pub.close()
    wait_for(lambda: listener.messages)
    letter = json.loads(listener.messages[0].payload)
    assert letter["reason"].startswith("point: ")
    assert "nonexistent" in letter["reason"] and "state" in letter["reason"]
    rows = wait_for(lambda: influxdb.query("SELECT * FROM telemetry", database=db))
    got = dict(zip(rows[0]["columns"], rows[0]["values"][0], strict=True))
    assert "state" not in got and got["total_count"] == sample.values["total_count"]
    assert collector.health()[1]["dead_letters"] == 1
    listener.close()


def test_sharded_collectors_split_the_plant_by_topic_filter(
    mosquitto, influxdb, make_plant, run_collector
):
    base = make_plant(mosquitto.port, influxdb.url)
    site, db = base.site.id, base.database.database
    ids = list(base.machines)  # two shards of the plant's machines, whatever their lines
    shards = {"a": ids[: len(ids) // 2], "b": ids[len(ids) // 2:]}
    collectors = {}
    for name, machines in shards.items():
        data = base.model_dump(mode="json")
        data["collector"]["client_id"] = f"{base.collector.client_id}-{name}"
        data["collector"]["topic_filter"] = ",".join(
            topics.machine_topic(site, base.machines[m].line, m, topics.TELEMETRY)
            for m in machines)
        collectors[name] = run_collector(type(base).model_validate(data))
    pub = Publisher(mosquitto.port)
    try:
        pub.publish_many([(telemetry_topic(base, m), telemetry(base, m, s).to_json())
                          for s in range(1, 11) for m in base.machines])
    finally:
        pub.close()
    for machine in base.machines:
        wait_for(lambda m=machine: seqs_stored(influxdb, db, m) == list(range(1, 11)))
    for name, machines in shards.items():
        registry, received = collectors[name].metrics.registry, 10 * len(machines)
        wait_for(lambda r=registry, n=received: r.get_sample_value(
            "shopfloor_collector_messages_received_total", {"kind": "telemetry"}) == n)
        assert collectors[name].batcher.tracker.last(machines[0]) == 10
        other = shards["b" if name == "a" else "a"][0]
        assert collectors[name].batcher.tracker.last(other) is None
