"""collector_stats: the collector writes its own counters and the end-to-end lag to
InfluxDB (real mosquitto, real InfluxDB); a failed stats write is dropped and reported;
the lag summary's percentiles (pure)."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from shopfloor.collector.stats import LagWindow, Snapshot, StatsReporter, stats_line, summarize
from shopfloor.shared import schema
from shopfloor.shared.influx import V1Writer
from shopfloor.shared.plant import Database
from tests.collector.helpers import Publisher, telemetry, telemetry_topic, wait_for
from tests.harness.services import free_port

GOOD, BAD = 12, 5
COUNTERS = ("received", "written", "dead_letters", "dead_letters_payload", "lost",
            "duplicates", "late", "pending")
SAMPLE_AGE_S = 2.0  # samples are published this long after their ts: lag >= this


def stats_rows(influx, plant) -> list[dict]:
    series = influx.query(
        f"SELECT * FROM {schema.COLLECTOR_STATS} WHERE site = '{plant.site.id}'",
        database=plant.database.database,
    )
    return [dict(zip(s["columns"], row, strict=True)) for s in series for row in s["values"]]


def test_collector_writes_its_counters_and_lag(mosquitto, influxdb, make_plant, run_collector):
    plant = make_plant(mosquitto.port, influxdb.url, stats_period_s=0.5)
    collector = run_collector(plant)
    pub = Publisher(mosquitto.port)
    topic = telemetry_topic(plant, "press1")
    try:
        for seq in range(1, GOOD + 1):
            ts = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=SAMPLE_AGE_S)
            pub.publish(topic, telemetry(plant, "press1", seq, ts).to_json())
        for i in range(BAD):
            pub.publish(topic, b"not json %d" % i)
    finally:
        pub.close()

    def settled() -> list[dict]:
        """All rows, once the latest counts every message. Once (1 in ~10 full runs) a
        read of the newest point showed dead_letters but a null dead_letters_payload,
        a field the same line always carries: read again until the rows are whole."""
        rows = stats_rows(influxdb, plant)
        whole = all(r[f] is not None for r in rows for f in COUNTERS)
        lags = sum(r.get("lag_samples") or 0 for r in rows)  # column absent until a lag
        done = rows and rows[-1]["received"] == GOOD + BAD and lags >= GOOD
        return rows if whole and done else []

    rows = wait_for(settled, 30)
    last = rows[-1]
    assert last["collector"] == plant.collector.client_id
    assert last["dead_letters"] == BAD and last["dead_letters_payload"] == BAD, rows
    assert last["written"] > 0 and last["lost"] == 0 and last["duplicates"] == 0
    counts = [r["received"] for r in rows]
    assert counts == sorted(counts)  # cumulative
    lagged = [r for r in rows if r.get("lag_samples") is not None]
    assert sum(r["lag_samples"] for r in lagged) == GOOD
    for row in lagged:
        assert SAMPLE_AGE_S <= row["lag_p50_s"] <= row["lag_p99_s"] <= row["lag_max_s"] < 60
    assert collector.stats.failures.failing is False


def test_a_failed_stats_write_is_dropped_and_reported():
    """A real writer aimed at a port nobody listens on: report() returns at once with
    False, twice (logged once at ERROR), and never raises."""
    writer = V1Writer(Database(url=f"http://127.0.0.1:{free_port()}", timeout_s=2.0))
    snapshot = Snapshot(1, 1, {}, 0, 0, 0, 0, None)
    reporter = StatsReporter("s", "c", 60.0, lambda: snapshot, lambda: writer.write,
                             threading.Event(), time.time)
    try:
        assert reporter.report() is False
        assert reporter.report() is False
        assert reporter.failures.failing and reporter.failures.failures == 2
        assert reporter.written == 0
    finally:
        writer.close()


def test_no_writer_yet_writes_nothing():
    reporter = StatsReporter("s", "c", 60.0, lambda: Snapshot(0, 0, {}, 0, 0, 0, 0, None),
                             lambda: None, threading.Event(), time.time)
    assert reporter.report() is False and not reporter.failures.failing


def test_stats_line_has_every_counter_and_no_lag_without_samples():
    line = stats_line("s1", "col", Snapshot(7, 30, {"payload": 2, "topic": 1}, 1, 2, 3, 4,
                                            None), 1000)
    assert line.startswith("collector_stats,collector=col,site=s1 received=7i,written=30i,"
                           "dead_letters=3i,")
    assert "dead_letters_payload=2i" in line and "dead_letters_point=0i" in line
    assert "lost=1i,duplicates=2i,late=3i,pending=4i 1000" in line and "lag" not in line


@given(st.lists(st.floats(0, 1e4), min_size=1, max_size=300))
def test_lag_summary_percentiles(lags):
    summary = summarize(lags)
    ordered = sorted(lags)
    assert summary.count == len(lags) and summary.max_s == ordered[-1]
    assert summary.p50_s == ordered[math.ceil(len(lags) / 2) - 1]
    assert ordered[0] <= summary.p50_s <= summary.p99_s <= summary.max_s


def test_lag_window_keeps_exact_count_and_max_beyond_its_reservoir():
    window = LagWindow(capacity=10)
    window.add(float(i) for i in range(7))  # partly fills the reservoir
    window.add(float(i) for i in range(1000, 7, -1))  # overflows it
    window.add([])
    summary = window.take()
    assert summary.count == 1000 and summary.max_s == 1000.0
    assert 0.0 <= summary.p50_s <= summary.p99_s <= 1000.0
    assert window.take() is None  # a new period
