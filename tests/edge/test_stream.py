"""A machine's stream takes readings from any driver, polled or pushing: the contract a
pushing driver (OPC UA subscriptions) relies on. Readings carry their source timestamp;
failed readings take the machine offline like failed polls; the agent's sink stamps a
reading without one with the time it arrives. Real SQLite outbox, no broker needed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shopfloor.edge.agent import _sink
from shopfloor.edge.drivers import Reading, factories
from shopfloor.edge.errors import DeviceError
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.state import StateTracker
from shopfloor.edge.store import Batch, Store
from shopfloor.edge.stream import FLOOR_AHEAD_MS, NO_FLOOR, MachineStream, restart_floor
from shopfloor.shared.enums import DeviceFailure, QueueFullPolicy
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.schema import ONE_MS, to_ms
from tests.harness.plants import example_data

T0 = dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC)


def messages(store: Store) -> list[tuple[str, dict[str, Any]]]:
    return [(r.message.topic, json.loads(r.message.payload))  # type: ignore[union-attr]
            for r in store.fetch(0, 10_000)]


def run_stream(tmp_path: Path, feed: Any,
               offline_after: int = 3) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    """Feed a stream over the outbox file in tmp_path (kept: a second call is the
    agent's restart, its stream continuing from what the file holds, as in
    `EdgeAgent._streams`); returns every message in the file and the metrics."""
    plant = parse_plant(example_data())
    agent = plant.agents[0].model_copy(update={"offline_after_failures": offline_after})
    store = Store(tmp_path / "outbox.sqlite3", 10_000, QueueFullPolicy.DROP_OLDEST)
    metrics = EdgeMetrics()

    async def main() -> None:
        outbox = Outbox(store, metrics)
        stream = MachineStream(plant.site.id, "press1", plant.machines["press1"], agent,
                               outbox, metrics, StateTracker(), times=store.latest_ms)
        feed(stream, _sink({"press1": stream}))
        await outbox.close()

    asyncio.run(main())  # closing the outbox commits and closes the store
    again = Store(tmp_path / "outbox.sqlite3", 10_000, QueueFullPolicy.DROP_OLDEST)
    try:
        return messages(again), metrics
    finally:
        again.close()


def failed(ts: dt.datetime | None) -> Reading:
    error = DeviceError("press1", DeviceFailure.CONNECT, "server went away")
    return Reading({}, {"state", "total_count"}, [error], answered=False, ts=ts)


def test_pushed_readings_keep_their_source_time_and_take_the_machine_offline(
    tmp_path: Path,
) -> None:
    def feed(stream: MachineStream, sink: Any) -> None:
        sink("press1", Reading({"state": 1, "total_count": 7}, set(), ts=T0))
        for k in range(1, 4):  # offline_after_failures of the example plant: 3
            sink("press1", failed(T0 + dt.timedelta(seconds=k)))
        sink("press1", Reading({"state": 1}, {"total_count"}, ts=T0 + dt.timedelta(seconds=9)))

    out, metrics = run_stream(tmp_path, feed)
    telemetry = [m for t, m in out if t.endswith("/press1/telemetry")]
    assert [m["seq"] for m in telemetry] == [0, 1, 2, 3, 4]
    assert [m["ts"] for m in telemetry] == [
        "2026-12-03T06:00:00Z", "2026-12-03T06:00:01Z", "2026-12-03T06:00:02Z",
        "2026-12-03T06:00:03Z", "2026-12-03T06:00:09Z"]
    assert telemetry[0]["values"] == {"state": 1, "total_count": 7}
    assert telemetry[1]["quality"] == {"state": "bad", "total_count": "bad"}
    assert telemetry[4]["quality"] == {"total_count": "bad"}
    states = [m for t, m in out if t.endswith("/press1/state")]
    assert [(s["state"], s.get("reason"), s["since"]) for s in states] == [
        ("running", None, "2026-12-03T06:00:00Z"),
        ("offline", "device_connect", "2026-12-03T06:00:01Z"),  # since the first failure
        ("running", None, "2026-12-03T06:00:09Z"),
    ]
    assert metrics.registry.get_sample_value(
        "shopfloor_edge_poll_failures_total", {"machine": "press1", "kind": "connect"}) == 3


def test_the_sink_stamps_a_reading_without_source_time_on_arrival(tmp_path: Path) -> None:
    before = dt.datetime.now(dt.UTC)

    def feed(stream: MachineStream, sink: Any) -> None:
        sink("press1", Reading({"state": 1}, set()))

    out, _ = run_stream(tmp_path, feed)
    (stamp,) = [m["ts"] for t, m in out if t.endswith("/telemetry")]
    after = dt.datetime.now(dt.UTC)
    assert before <= dt.datetime.fromisoformat(stamp) <= after


def test_every_protocol_of_the_plant_file_has_an_edge_driver() -> None:
    from shopfloor.shared.protocols import PROTOCOLS

    assert sorted(factories()) == sorted(PROTOCOLS)


_STATE_INPUT = st.fixed_dictionaries({}, optional={
    "state": st.sampled_from([0, 1, 2, 3, 10, 99]),
    "product": st.sampled_from([1, 2, 3, 7]),
    "work_order": st.sampled_from(["", "WO-1", "WO-2 "]),
    "total_count": st.integers(0, 5),
})


_RUNNING = {"state": 1, "product": 2, "work_order": "WO-1"}


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.none(), _STATE_INPUT), max_size=25))
@example([_RUNNING, None, _RUNNING])  # offline and back with the same values
@example([_RUNNING, _RUNNING, {"state": 1}, {"state": 2, "work_order": ""}, {"state": 2}])
def test_unchanged_state_inputs_skip_the_derivation_and_publish_the_same(
    tmp_path_factory: Any, steps: list[dict[str, Any] | None]
) -> None:
    """The stream derives the state only when the points it comes from changed (or the
    machine was offline between): the messages are those of deriving it every time.
    None in `steps` is a failed reading."""

    def feed(every_time: bool) -> Any:
        def run(stream: MachineStream, sink: Any) -> None:
            for k, values in enumerate(steps):
                if every_time:
                    stream._state_inputs = None  # the derivation runs for every reading
                ts = T0 + dt.timedelta(seconds=k)
                reading = failed(ts) if values is None else Reading(dict(values), set(), ts=ts)
                sink("press1", reading)
        return run

    # offline after one failure: back online, the values may equal those before it
    cached, _ = run_stream(tmp_path_factory.mktemp("cached"), feed(every_time=False), 1)
    reference, _ = run_stream(tmp_path_factory.mktemp("reference"), feed(every_time=True), 1)
    for _, message in cached + reference:
        message.pop("epoch", None)  # each outbox file has its own
    assert cached == reference


def test_two_samples_never_share_a_millisecond(tmp_path: Path) -> None:
    """InfluxDB keeps one point per series and millisecond: an OPC UA publish with
    changes 0.3 ms apart, or a source time repeated in a later publish, would each have
    overwritten a stored sample (its seq then counted lost). Only a colliding sample
    moves, to the next free millisecond; a back-dated one keeps its time."""
    us = dt.timedelta(microseconds=1)
    stamps = [T0, T0 + 300 * us, T0 + 300 * us, T0 + 700 * us, T0 - 5000 * us,
              T0 + 2500 * us, T0 + 9000 * us, T0 - 86_400_000_000 * us]
    want = [T0, T0 + 1000 * us, T0 + 2000 * us, T0 + 3000 * us, T0 - 5000 * us,
            T0 + 4000 * us, T0 + 9000 * us, T0 - 86_400_000_000 * us]

    def feed(stream: MachineStream, sink: Any) -> None:
        for n, ts in enumerate(stamps):
            sink("press1", Reading({"state": 1, "total_count": n}, set(), ts=ts))

    out, _ = run_stream(tmp_path, feed)
    times = [dt.datetime.fromisoformat(m["ts"]) for t, m in out
             if t.endswith("/press1/telemetry")]
    assert times == want


def telemetry_ms(out: list[tuple[str, dict[str, Any]]]) -> list[int]:
    return [to_ms(dt.datetime.fromisoformat(m["ts"])) for t, m in out
            if t.endswith("/press1/telemetry")]


_OFFSETS_US = st.lists(st.integers(-3_000, 3_000), min_size=1, max_size=12)


@settings(derandomize=True, max_examples=20, deadline=None)
@given(_OFFSETS_US, _OFFSETS_US, st.booleans())
@example([0, 1000, 2000], [0, 1000, 2000], False)  # a new subscription's first values
def test_no_sample_takes_a_millisecond_stored_before_a_restart(
    tmp_path_factory: Any, before_us: list[int], after_us: list[int], repeat: bool,
) -> None:
    """Stamps before a restart, then after it (`repeat`: the first run's again, as a
    new OPC UA subscription sends its nodes' old source times): InfluxDB keeps one point
    per series and millisecond, so no two samples may share one, and the restarted
    stream knows only the latest time stored. A sample after it keeps its time unless it
    collides; one at or before it moves to the next free millisecond after it."""
    folder = tmp_path_factory.mktemp("restart")
    us = dt.timedelta(microseconds=1)

    def feed(offsets: list[int]) -> Any:
        def run(stream: MachineStream, sink: Any) -> None:
            for n, offset in enumerate(offsets):
                sink("press1", Reading({"total_count": n}, set(), ts=T0 + offset * us))
        return run

    first = telemetry_ms(run_stream(folder, feed(before_us))[0])
    both = telemetry_ms(run_stream(folder, feed(before_us if repeat else after_us))[0])
    assert both[: len(first)] == first  # the file still holds the first run's samples
    second, latest = both[len(first):], max(first)
    assert len(set(both)) == len(both), both
    assert all(ms > latest for ms in second), (latest, second)
    for offset, ms in zip(before_us if repeat else after_us, second, strict=True):
        if to_ms(T0 + offset * us) > latest:
            assert ms >= to_ms(T0 + offset * us)  # later only when it collided


def test_a_floor_far_ahead_of_the_clock_is_not_kept() -> None:
    """The latest stored sample time is the restarted stream's floor, unless it is more
    than FLOOR_AHEAD_MS ahead of the agent's clock: a clock that was ahead would
    otherwise push every new sample after it for as long as it was ahead."""
    now = 1_796_000_000_000
    assert restart_floor(None, now) == NO_FLOOR
    assert restart_floor(now - 3_600_000, now) == now - 3_600_000
    assert restart_floor(now + FLOOR_AHEAD_MS, now) == now + FLOOR_AHEAD_MS
    assert restart_floor(now + FLOOR_AHEAD_MS + 1, now) == NO_FLOOR


def test_a_stored_time_far_ahead_of_the_clock_moves_no_sample(
        tmp_path: Path, caplog: Any) -> None:
    """A clock that was an hour ahead before the restart left its times in the file:
    the restarted stream keeps its samples' times (and says why), rather than pushing
    every one of them after a time an hour from now."""
    ahead_ms = to_ms(dt.datetime.now(dt.UTC)) + 3_600_000
    store = Store(tmp_path / "outbox.sqlite3", 10_000, QueueFullPolicy.DROP_OLDEST)
    store.latest_ms["press1"] = ahead_ms
    store.commit(Batch(seqs={"press1": 0}))
    store.close()

    def feed(stream: MachineStream, sink: Any) -> None:
        for n in range(3):
            sink("press1", Reading({"total_count": n}, set(), ts=T0 + n * ONE_MS))

    with caplog.at_level("WARNING", logger="shopfloor.edge.stream"):
        out, _ = run_stream(tmp_path, feed)
    assert telemetry_ms(out) == [to_ms(T0) + n for n in range(3)]
    assert "ahead of this clock" in caplog.text
