"""The publisher takes committed rows from memory (edge/committed.py) and reads SQLite
only when memory cannot vouch for every row: at start (a backlog), beyond the memory
bound (a broker outage), after drops (queue full), after a failed commit. Real SQLite
files throughout; `ReadCountingStore` is the real store, counting its reads back. The
publisher's side is played by `Reader`, which does what Publisher does with
`Outbox.fetch` (cursor, `sent_upto`, re-reading after drops)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.edge.committed import CommittedRows
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.mqtt import SESSION_EXPIRY_S, EdgeMqttLink
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.publisher import Publisher
from shopfloor.edge.store import LAST_ID, BadRow, Message, Row, Store
from shopfloor.shared.enums import QueueFullPolicy
from shopfloor.shared.mqtt import Session
from shopfloor.shared.plant import Broker
from tests.edge.conftest import Recorder
from tests.harness.services import LOOPBACK, Mosquitto

TOPIC = "shopfloor/v1/s/l/m/telemetry"


class ReadCountingStore(Store):
    """The real store, counting the publisher's side's reads back from SQLite (calls and
    rows)."""

    calls = reads = 0

    def fetch(self, after_id: int, limit: int, upto_id: int = LAST_ID) -> list[Row | BadRow]:
        found = super().fetch(after_id, limit, upto_id)
        self.calls += 1
        self.reads += len(found)
        return found


def store_at(path: Path, max_samples: int = 100_000) -> ReadCountingStore:
    return ReadCountingStore(path, max_samples, QueueFullPolicy.DROP_OLDEST)


def sample(n: int) -> Message:
    return Message(TOPIC, b"%d" % n, sample=True)


class Reader:
    """The publisher's use of the outbox: reads from its cursor, hands each row to the
    broker at once (`sent_upto`), acknowledges on request, and after drops reads again
    from what was sent."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.cursor = 0
        self.drops_seen = outbox.drops
        self.got: list[tuple[int, int]] = []  # (row id, sample number), in arrival order
        self.unacked: list[int] = []

    def read(self, limit: int = 500) -> int:
        if self.outbox.drops != self.drops_seen:
            self.drops_seen, self.cursor = self.outbox.drops, self.outbox.sent_upto
        fetched = self.outbox.fetch(self.cursor, limit)
        for row_id, message in fetched.rows:
            self.got.append((row_id, int(message.payload)))
            self.unacked.append(row_id)
            self.outbox.sent_upto = row_id
        self.cursor = fetched.upto
        return len(fetched.rows)

    def read_all(self) -> None:
        """Read until the cursor stands still (a read may only move it up to memory)."""
        while True:
            before = self.cursor
            if not self.read() and self.cursor == before:
                return

    def ack(self) -> None:
        for row_id in self.unacked:
            self.outbox.ack(row_id, sample=True)
        self.unacked.clear()


def in_sqlite(store: Store) -> list[tuple[int, int]]:
    return [(r.id, int(r.message.payload)) for r in Store.fetch(store, 0, 1_000_000)]


def test_steady_state_rows_come_from_memory_in_order_and_exactly_once(tmp_path: Path) -> None:
    async def run() -> None:
        store = store_at(tmp_path / "o.db")
        outbox = Outbox(store, EdgeMetrics())
        reader = Reader(outbox)
        for k in range(100):  # 100 commits of 7 samples, each read right after it
            for n in range(7 * k, 7 * k + 7):
                outbox.put(sample(n))
            await outbox.commit()
            reader.read()
        assert reader.got == in_sqlite(store)  # the ids SQLite gave them, in order
        assert [n for _, n in reader.got] == list(range(700))
        assert store.calls == 0  # nothing read back
        reader.ack()
        await outbox.commit()
        assert store.samples == 0 and in_sqlite(store) == []
        await outbox.close()

    asyncio.run(run())


async def publish_through(port: int, session_id: str, store: Store,
                          feed: Callable[[Outbox], Awaitable[None]]) -> EdgeMetrics:
    """Run the real outbox, link and publisher against mosquitto at `port` while `feed`
    puts messages; until every row was acknowledged and deleted (or quarantined)."""
    metrics = EdgeMetrics()
    outbox = Outbox(store, metrics)
    link = EdgeMqttLink(Broker(host=LOOPBACK, port=port),
                        Session(session_id, expiry_s=SESSION_EXPIRY_S, inflight=20),
                        backoff_max_s=1)
    publisher = Publisher(outbox, link, 20, metrics)
    tasks = [asyncio.create_task(t()) for t in (link.run, outbox.run, publisher.run)]
    try:
        async with asyncio.timeout(60):
            await link.connected.wait()
            await feed(outbox)
            while outbox.depth or publisher.inflight or outbox.has_rows_after(0):
                await asyncio.sleep(0.02)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await outbox.close()
    return metrics


def test_rows_from_memory_reach_the_broker_in_order_and_once(
    tmp_path: Path, mosquitto: Mosquitto, unique_site: str,
    recorder_factory: Callable[[int, str], Recorder],
) -> None:
    """The real publisher, MQTT link and mosquitto: 3,000 samples put in bursts of 30
    (pollers' time slots) arrive at a subscriber in order, each once, and none was read
    back from SQLite."""
    topic = f"shopfloor/v1/{unique_site}/l/m/telemetry"
    recorder = recorder_factory(mosquitto.port, topic)
    store = store_at(tmp_path / "o.db")

    async def feed(outbox: Outbox) -> None:
        for k in range(100):
            for n in range(30 * k, 30 * k + 30):
                outbox.put(Message(topic, b"%d" % n, sample=True))
            await asyncio.sleep(0.005)

    asyncio.run(publish_through(mosquitto.port, f"memory-{unique_site}",
                                store, feed))
    recorder.wait_for(lambda: len(recorder.messages) >= 3_000, timeout_s=30)
    assert [int(payload) for _, payload, _ in recorder.messages] == list(range(3_000))
    assert store.reads == 0  # (one empty read at start: the backlog a last run may have left)


def test_rows_from_memory_the_client_refuses_are_quarantined_and_the_rest_flows(
    tmp_path: Path, mosquitto: Mosquitto, unique_site: str,
    recorder_factory: Callable[[int, str], Recorder],
) -> None:
    """Rows taken from memory skip the read-back type checks; the MQTT client refuses
    what no broker would take (a wildcard, a NUL, an empty topic): quarantined, once
    each, and the messages around them arrive in order."""
    topic = f"shopfloor/v1/{unique_site}/l/m/telemetry"
    recorder = recorder_factory(mosquitto.port, topic)
    path = tmp_path / "o.db"
    bad = [f"{topic}/+", f"{topic}\0x", ""]

    async def feed(outbox: Outbox) -> None:
        for n in range(40):
            outbox.put(Message(topic, b"%d" % n, sample=True))
            if n % 10 == 5:
                outbox.put(Message(bad[n // 10 % 3], b"bad %d" % n, sample=True))
            await asyncio.sleep(0.002)

    metrics = asyncio.run(publish_through(mosquitto.port, f"refused-{unique_site}",
                                          store_at(path), feed))
    recorder.wait_for(lambda: len(recorder.messages) >= 40, timeout_s=30)
    assert [int(payload) for _, payload, _ in recorder.messages] == list(range(40))
    db = sqlite3.connect(path)
    kept = db.execute("SELECT payload, reason FROM quarantine ORDER BY id").fetchall()
    db.close()
    assert [p for p, _ in kept] == [b"bad 5", b"bad 15", b"bad 25", b"bad 35"]
    assert all("refused by the MQTT client" in reason for _, reason in kept)
    assert metrics.registry.get_sample_value("shopfloor_edge_quarantined_total") == 4


def test_rows_committed_behind_its_back_make_the_memory_start_over() -> None:
    """Pure: the queue vouches only for rows after its start; a commit that does not
    follow the last one it saw (or whose ids are unknown) starts it over."""
    rows = CommittedRows(bound=100)
    m = [sample(n) for n in range(5)]
    rows.add(0, m[:3])  # ids 1, 2, 3
    rows.add(5, m[3:])  # ids 6, 7: 4 and 5 were committed without it
    assert rows.take(3, 10) is None  # cannot vouch for 4 and 5: read SQLite up to start
    assert rows.start == 5
    assert rows.take(5, 10) == [(6, m[3]), (7, m[4])]
    rows.add(7, m[:2])
    rows.add(None, m[2:3])  # ids unknown: nothing in memory can be trusted
    assert rows.take(7, 10) is None and len(rows) == 0


def test_a_backlog_from_the_last_run_is_read_from_sqlite_then_memory_takes_over(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        first = Outbox(store_at(tmp_path / "o.db"), EdgeMetrics())
        for n in range(1_200):
            first.put(sample(n))
        await first.commit()
        await first.close()  # never published: the backlog of the next start

        store = store_at(tmp_path / "o.db")
        outbox = Outbox(store, EdgeMetrics())
        reader = Reader(outbox)
        reader.read(limit=500)  # the backlog is not in memory
        assert store.reads == 500
        for n in range(1_200, 1_300):  # new samples while the backlog drains
            outbox.put(sample(n))
        await outbox.commit()
        reader.read_all()
        assert store.reads == 1_200  # the backlog, once; the new samples from memory
        assert [n for _, n in reader.got] == list(range(1_300))
        assert reader.got == in_sqlite(store)
        await outbox.close()

    asyncio.run(run())


def test_beyond_the_memory_bound_rows_are_read_from_sqlite_and_none_is_lost(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        store = store_at(tmp_path / "o.db")
        outbox = Outbox(store, EdgeMetrics(), memory_rows=50)
        reader = Reader(outbox)
        for n in range(400):  # a broker outage: nothing is taken
            outbox.put(sample(n))
            await outbox.commit()
            assert len(outbox._recent) <= 50  # memory stays bounded
        reader.read_all()
        assert store.reads == 350  # what memory let go of, read back once
        for n in range(400, 500):  # caught up: from memory again
            outbox.put(sample(n))
            await outbox.commit()
            reader.read()
        assert store.reads == 350
        assert [n for _, n in reader.got] == list(range(500))
        assert reader.got == in_sqlite(store)
        await outbox.close()

    asyncio.run(run())


def test_after_drops_the_publisher_reads_sqlite_from_what_it_sent(tmp_path: Path) -> None:
    async def run() -> None:
        store = store_at(tmp_path / "o.db", max_samples=100)
        metrics = EdgeMetrics()
        outbox = Outbox(store, metrics)
        reader = Reader(outbox)
        for n in range(60):
            outbox.put(sample(n))
        await outbox.commit()
        reader.read(limit=20)  # 20 with the broker, unacknowledged
        for n in range(60, 150):  # the queue overflows: the oldest not yet sent go
            outbox.put(sample(n))
        await outbox.commit()
        reader.read_all()
        dropped = metrics.registry.get_sample_value(
            "shopfloor_edge_dropped_total", {"reason": "queue_full"})
        assert dropped == 50 and store.calls > 0  # memory forgot: SQLite was asked
        got = [n for _, n in reader.got]
        assert got == list(range(20)) + list(range(70, 150))  # in order, each once
        await outbox.close()

    asyncio.run(run())


def test_a_failed_commit_hands_the_publisher_nothing_it_did_not_write(tmp_path: Path) -> None:
    path = tmp_path / "o.db"

    async def run() -> None:
        store = store_at(path)
        outbox = Outbox(store, EdgeMetrics())
        reader = Reader(outbox)
        for n in range(10):
            outbox.put(sample(n))
        await outbox.commit()
        reader.read()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the file: commits fail
        for n in range(10, 30):
            outbox.put(sample(n))
        await outbox.commit()
        assert outbox.problem is not None and "locked" in outbox.problem
        assert reader.read() == 0  # nothing was written, nothing is handed over
        other.execute("ROLLBACK")
        other.close()
        await outbox.commit()  # the waiting samples, now
        assert outbox.problem is None
        reader.read_all()
        assert [n for _, n in reader.got] == list(range(30))
        assert reader.got == in_sqlite(store)
        await outbox.close()

    asyncio.run(run())


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 25)),
        st.tuples(st.just("commit"), st.just(0)),
        st.tuples(st.just("read"), st.integers(1, 40)),
        st.tuples(st.just("ack"), st.just(0)),
        st.tuples(st.just("restart"), st.just(0)),
    ),
    max_size=40,
)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(STEPS)
def test_every_committed_sample_is_read_once_per_run_in_order_or_counted_dropped(
    steps: list[tuple[str, int]],
) -> None:
    """Any mix of commits, reads, acknowledgements, restarts (a new process on the same
    file: what was not acknowledged is sent again) and queue-full drops, with a memory
    bound of 16 rows: within a run the publisher reads rows in increasing id order, never
    one twice; every sample put is read at least once or counted dropped."""
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run_steps(Path(tmp) / "o.db", steps))


async def _run_steps(path: Path, steps: list[tuple[str, int]]) -> None:
    def start() -> tuple[Outbox, Reader]:
        outbox = Outbox(store_at(path, max_samples=60), metrics, memory_rows=16)
        return outbox, Reader(outbox)

    metrics = EdgeMetrics()
    outbox, reader = start()
    runs: list[list[tuple[int, int]]] = [reader.got]
    put = 0
    for step, n in [*steps, ("commit", 0)]:
        if step == "put":
            for k in range(put, put + n):
                outbox.put(sample(k))
            put += n
        elif step == "commit":
            await outbox.commit()
        elif step == "read":
            reader.read(n)
        elif step == "ack":
            reader.ack()
        else:
            await outbox.close()
            outbox, reader = start()
            runs.append(reader.got)
    reader.read_all()
    await outbox.close()
    for got in runs:
        ids = [row_id for row_id, _ in got]
        assert ids == sorted(set(ids))  # in order, each once
        numbers = [k for _, k in got]
        assert numbers == sorted(numbers)
    read = {k for got in runs for _, k in got}
    dropped = metrics.registry.get_sample_value(
        "shopfloor_edge_dropped_total", {"reason": "queue_full"}) or 0
    assert read <= set(range(put))
    if len(runs) == 1:
        assert len(read) + dropped == put  # each read or dropped, never both
    else:  # a new run may drop a row an earlier run had sent (it arrived, and is counted)
        assert put - len(read) <= dropped
