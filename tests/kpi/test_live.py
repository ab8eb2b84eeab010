"""The live KPI sink fed batch by batch (as the collector calls it, after the samples are
in the real InfluxDB): rollups, shift records equal to the on-demand computation, late
samples, retained MQTT KPIs on a real mosquitto."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable

import pytest
from paho.mqtt.client import CallbackAPIVersion, Client, MQTTMessage

from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.collector.sinks import WrittenBatch
from shopfloor.kpi.live import LiveKpi
from shopfloor.kpi.model import Sample
from shopfloor.kpi.ondemand import Engine, compute_oee
from shopfloor.kpi.store import KpiStore
from shopfloor.shared import topics
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.services import InfluxDB, Mosquitto
from tests.kpi.conftest import as_telemetry, store_samples
from tests.kpi.plants import IDLE, JAM, RUN, SETUP, Tape, ms, plant_data
from tests.kpi.test_engine import BREAKS_SHIFT, through_breaks

T0 = ms(2026, 11, 25, 6)
SHIFTS = [{"name": "early", "start": "06:00", "end": "07:00",
           "breaks": [{"start": "06:30", "end": "06:35"}]},
          {"name": "late", "start": "07:00", "end": "08:00"}]
HOLE = (T0 + 1_200_000, T0 + 1_320_000)  # 06:20-06:22 arrives late


def history() -> list[Sample]:
    tape = Tape(T0 - 300_000)
    tape.wo = "WO1"
    tape.run(RUN, 1200, parts_per_step=1, scrap_every=50)
    tape.run(JAM, 100)
    tape.run(RUN, 500, parts_per_step=1)
    tape.run(JAM, 600)
    tape.run(SETUP, 300)
    tape.product = 2
    tape.run(RUN, 2400, parts_per_step=1, scrap_every=30)
    return tape.samples


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def feed(sink: LiveKpi, store: KpiStore, samples: list[Sample], size: int = 50) -> None:
    for i in range(0, len(samples), size):
        part = samples[i:i + size]
        store_samples(store, "m1", part)  # durably written first, as the collector does
        messages = [ParsedMessage(Kind.TELEMETRY, store.site, as_telemetry(s), line="l1",
                                  machine="m1") for s in part]
        sink.on_batch(WrittenBatch(messages, dt.datetime.now(dt.UTC)))


def final_record(store: KpiStore) -> dict:
    series = store.query(f"SELECT * FROM oee WHERE site = '{store.site}' AND "
                         f"\"window\" = 'shift_final' AND shift = 'early'")
    (s,) = series
    (row,) = [dict(zip(s["columns"], v, strict=True)) for v in s["values"]]
    return row


def same(stored: dict, result: dict) -> None:
    for key, value in result.items():
        if key == "flags":
            assert stored["flags"] == ",".join(value)
        elif value is None:
            assert stored.get(key) is None, key
        else:
            assert stored[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key


def retained(port: int, topic: str) -> dict:
    got: list[bytes] = []
    done = threading.Event()

    def on_message(client: Client, userdata: object, msg: MQTTMessage) -> None:
        got.append(msg.payload)
        done.set()

    client = Client(CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        assert done.wait(10), f"no retained message on {topic}"
    finally:
        client.loop_stop()
        client.disconnect()
    return json.loads(got[-1])


def test_live_shift_record_equals_on_demand(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore],
        mosquitto: Mosquitto) -> None:
    plant = make_plant(shifts=SHIFTS, collector={"lateness_s": 3600})
    store = open_store(plant)
    publisher = Client(CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()

    def publish(topic: str, payload: bytes) -> None:
        publisher.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

    sink = LiveKpi(plant, store, clock=Clock(), publish=publish)
    samples = history()
    on_time = [s for s in samples if not HOLE[0] <= s.ts_ms < HOLE[1]]
    feed(sink, store, on_time)
    sink.tick()
    first = final_record(store)
    report = compute_oee(plant, store, "m1", T0, T0 + 3_600_000)
    assert report.rollup_minutes > 40  # most of the shift came from stored rollups
    same(first, report.result.as_dict())
    assert first["unk_s"] == pytest.approx(121)  # the hole (+ one poll) is unknown

    # The missing samples arrive late (within lateness): the final record is redone.
    feed(sink, store, [s for s in samples if HOLE[0] <= s.ts_ms < HOLE[1]])
    sink.tick()
    second = final_record(store)
    assert second["unk_s"] == 0
    same(second, compute_oee(plant, store, "m1", T0, T0 + 3_600_000).result.as_dict())

    # Far too late: left out of live KPIs (still stored by the collector).
    sink.add("m1", Sample(T0 - 7_200_000, {"state": RUN}))
    assert sink.late_dropped == 1

    kpi = retained(mosquitto.port, topics.machine_topic(plant.site.id, "l1", "m1", topics.KPI))
    assert kpi["machine"] == "m1" and kpi["shift"]["shift"] == "late"
    assert kpi["rolling"]["availability"] is not None
    assert type(kpi["rolling"]["pq"]) is int and type(kpi["shift"]["parts_total"]) is int
    line = retained(mosquitto.port, topics.line_kpi_topic(plant.site.id, "l1"))
    assert line["wip"]["line"] == "l1"
    # never counted: no level on MQTT, the change since the window's start (whole parts)
    assert line["wip"]["anchored"] is False and line["wip"]["wip"] is None
    assert type(line["wip"]["change"]) is int and type(line["wip"]["inflow"]) is int
    publisher.loop_stop()
    publisher.disconnect()


def test_database_outage_loses_no_kpis(own_influxdb: InfluxDB, unique_site: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    plant = parse_plant(plant_data(SHIFTS, site=unique_site,
                                   database={"url": own_influxdb.url, "database": "kpi"}))
    store = KpiStore.open(plant)
    sink = LiveKpi(plant, store, clock=Clock())
    samples = history()
    half = len(samples) // 2
    feed(sink, store, samples[:half])
    store_samples(store, "m1", [samples[half]])  # written just before the outage,
    own_influxdb.stop()
    sink.add("m1", samples[half])  # handed to the sink after it
    sink.tick()  # fails: logged, nothing raised, points kept for the next tick
    assert "live KPIs" in caplog.text
    own_influxdb.start()
    feed(sink, store, samples[half + 1:])
    sink.tick()
    same(final_record(store), compute_oee(plant, store, "m1", T0, T0 + 3_600_000)
         .result.as_dict())
    store.close()


def test_running_through_a_break_live_and_on_demand(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore]) -> None:
    """The break rule (tests/kpi/test_engine.py, hand-computed) through the live sink's
    final shift record and the on-demand engine, both on the real InfluxDB."""
    plant = make_plant(shifts=[BREAKS_SHIFT])
    store = open_store(plant)
    tape = through_breaks()
    tape.t += 1000
    tape.run(IDLE, 1500)  # after the shift, so that the live sink finalizes it
    sink = LiveKpi(plant, store, clock=Clock())
    feed(sink, store, tape.samples, size=500)
    sink.tick()
    series = store.query(f"SELECT * FROM oee WHERE site = '{store.site}' AND "
                         f"\"window\" = 'shift_final'")
    (s,) = series
    (row,) = [dict(zip(s["columns"], v, strict=True)) for v in s["values"]]
    for result in (row, compute_oee(plant, store, "m1", T0, T0 + 7_200_000).result.as_dict(),
                   Engine(plant, store, use_rollups=False).oee("m1", T0, T0 + 7_200_000)
                   .result.as_dict()):
        assert (result["pdot_s"], result["pbt_s"], result["apt_s"]) == (900, 6300, 6300)
        assert (result["l1_s"], result["pq"], result["sq"]) == (0, 6300, 9)
        assert result["oee"] == pytest.approx((6300 - 9) / 6300)


def test_live_wip_counts_from_a_stocktake_inside_the_window(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore]) -> None:
    """The rolling window starts before the stocktake (06:04:30, 200 parts, inside a
    minute); m1 makes 2 parts/s, m2 takes 1/s. Hand-computed: the level at the watermark
    (06:09:59) is 200 + 329 (the pairs from 06:04:30 to it); the level before the
    stocktake counts backwards from it (200 - 270 at 06:00, so drift is flagged)."""
    plant = make_plant(stations=2)
    store = open_store(plant)
    at = T0 + 270_000
    store.write([f"wip_anchor,buffer={b},line=l1,site={plant.site.id} count=200i {at}"
                 for b in ("_line", "m1")])
    up, down = Tape(T0), Tape(T0)
    up.run(RUN, 600, parts_per_step=2)
    down.run(RUN, 600, parts_per_step=1)
    sink = LiveKpi(plant, store, clock=Clock())
    for i in range(0, 600, 100):
        messages = []
        for machine, tape in (("m1", up), ("m2", down)):
            part = tape.samples[i:i + 100]
            store_samples(store, machine, part)
            messages += [ParsedMessage(Kind.TELEMETRY, store.site, as_telemetry(s),
                                       line="l1", machine=machine) for s in part]
        sink.on_batch(WrittenBatch(messages, dt.datetime.now(dt.UTC)))
    sink.tick()
    series = store.query(f"SELECT * FROM wip WHERE site = '{store.site}' AND "
                         f"\"window\" = 'rolling' AND buffer = '' ORDER BY time DESC LIMIT 1")
    (s,) = series
    row = dict(zip(s["columns"], s["values"][0], strict=True))
    assert row["time"] == T0 + 599_000
    assert (row["wip"], row["anchor_ms"], row["anchored"]) == (529, at, True)
    assert (row["change"], row["inflow"], row["outflow_good"]) == (599, 1198, 599)
    assert row["drift"] is True  # 200 - 270 < 0 at 06:00: the count was too low
    assert all(type(row[k]) is int for k in ("wip", "change", "inflow", "outflow_good"))


def test_points_refused_by_influxdb_do_not_block_later_kpis(
        make_plant: Callable[..., Plant], open_store: Callable[[Plant], KpiStore],
        caplog: pytest.LogCaptureFixture) -> None:
    """A database written by an older version holds `oee` counts as floats: InfluxDB
    refuses the integer points in that shard (field type conflict). The refused batch is
    logged and not retried; the rest of the KPIs are written and later ticks go on."""
    plant = make_plant(shifts=SHIFTS)
    store = open_store(plant)
    store.write([f"oee,line=l1,machine=m1,site={plant.site.id},window=rolling pq=1.5 {T0}"])
    sink = LiveKpi(plant, store, clock=Clock())
    samples = history()
    feed(sink, store, samples[:1200])
    sink.tick()
    assert sink.rejected_batches >= 1 and "field type conflict" in caplog.text
    assert sink._pending == []  # nothing kept to retry forever
    feed(sink, store, samples[1200:])
    sink.tick()
    rows = store.query(f"SELECT count(pot_ms) FROM oee_rollup WHERE site = '{store.site}'")
    assert rows[0]["values"][0][1] >= len(samples) // 60 - 2  # every minute rolled up
