"""Sinks get every written batch (after the write, with parsed messages); a failing sink
is logged and never stops the collector or the other sinks."""

from __future__ import annotations

from shopfloor.collector.sinks import WrittenBatch
from shopfloor.shared import topics
from shopfloor.shared.enums import MachineState
from tests.collector.helpers import (
    T0,
    Publisher,
    seqs_stored,
    state,
    telemetry,
    telemetry_topic,
    wait_for,
)


class Recorder:
    def __init__(self, influx, database: str) -> None:
        self.batches: list[WrittenBatch] = []
        self.stored_when_called: list[int] = []
        self._influx, self._db = influx, database

    def on_batch(self, batch: WrittenBatch) -> None:
        self.batches.append(batch)
        self.stored_when_called.append(len(seqs_stored(self._influx, self._db, "press1")))


class Broken:
    def on_batch(self, batch: WrittenBatch) -> None:
        raise RuntimeError("sink bug")


def test_sinks_see_written_batches_in_order(mosquitto, influxdb, make_plant, run_collector):
    plant = make_plant(mosquitto.port, influxdb.url)
    db = plant.database.database
    from shopfloor.collector.service import Collector

    collector = Collector(plant)
    recorder = Recorder(influxdb, db)
    collector.add_sink(Broken())
    collector.add_sink(recorder)
    collector.start(metrics_port=0)
    try:
        assert collector.wait_ready(30)
        pub = Publisher(mosquitto.port)
        topic = telemetry_topic(plant, "press1")
        state_topic = topics.machine_topic(plant.site.id, "line1", "press1", topics.STATE)
        pub.publish_many([(topic, telemetry(plant, "press1", s).to_json()) for s in (1, 2, 3, 2)]
                         + [(state_topic, state(MachineState.RUNNING, T0).to_json())])
        pub.close()
        wait_for(lambda: sum(len(b.messages) for b in recorder.batches) == 5)
    finally:
        collector.stop()
    messages = [m for b in recorder.batches for m in b.messages]
    seqs = [(m.payload.seq, m.duplicate) for b in recorder.batches for m in b.telemetry()]
    assert seqs == [(1, False), (2, False), (3, False), (2, True)]
    assert [m.machine for m in messages] == ["press1"] * 5
    assert [m.payload.state for b in recorder.batches for m in b.states()] == ["running"]
    assert recorder.stored_when_called[-1] == 3  # called after the batch was written
    assert seqs_stored(influxdb, db, "press1") == [1, 2, 3]
