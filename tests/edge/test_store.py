"""The SQLite outbox: queue-full policies, sequence numbers and command ids persist."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfloor.edge.store import Batch, Message, Store
from shopfloor.shared.enums import QueueFullPolicy


def samples(n: int, start: int = 0) -> list[Message]:
    return [Message("t", f"{start + i}".encode(), sample=True) for i in range(n)]


def test_drop_oldest_keeps_the_newest(tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db", 100, QueueFullPolicy.DROP_OLDEST)
    assert store.commit(Batch(messages=samples(90))).dropped == 0
    state = Message("s", b"state", retain=True)
    assert store.commit(Batch(messages=[*samples(20, 90), state])).dropped == 10
    rows = store.fetch(0, 1000)
    kept = [int(r.message.payload) for r in rows if r.message.sample]
    assert kept == list(range(10, 110))
    assert [r.message.payload for r in rows if not r.message.sample] == [b"state"]
    assert store.samples == 100


def test_drop_newest_keeps_the_oldest(tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db", 100, QueueFullPolicy.DROP_NEWEST)
    store.commit(Batch(messages=samples(90)))
    assert store.commit(Batch(messages=samples(20, 90))).dropped == 10
    kept = [int(r.message.payload) for r in store.fetch(0, 1000)]
    assert kept == list(range(100))


def test_batch_larger_than_the_queue(tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db", 100, QueueFullPolicy.DROP_OLDEST)
    assert store.commit(Batch(messages=samples(150))).dropped == 50
    assert [int(r.message.payload) for r in store.fetch(0, 1000)] == list(range(50, 150))


def test_acks_delete_and_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    store = Store(path, 100, QueueFullPolicy.DROP_OLDEST)
    store.commit(Batch(messages=samples(3), seqs={"m1": 2}, states={"m1": b"{}"}))
    first = store.fetch(0, 10)
    store.commit(Batch(acked_samples=[first[0].id, first[1].id]))
    assert store.claim_command("c1", "m1", 1.0) and not store.claim_command("c1", "m1", 2.0)
    store.close()

    again = Store(path, 100, QueueFullPolicy.DROP_OLDEST)
    assert [r.message.payload for r in again.fetch(0, 10)] == [b"2"]
    assert again.samples == 1
    assert again.seqs() == {"m1": 2}
    assert again.states() == {"m1": b"{}"}
    assert not again.claim_command("c1", "m1", 3.0)
    # ids are never reused, so a publisher cursor never skips a new row
    again.commit(Batch(acked_samples=[first[2].id]))
    again.commit(Batch(messages=samples(1)))
    assert again.fetch(first[2].id, 10)[0].id > first[2].id


def test_drop_oldest_spares_rows_already_sent(tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db", 100, QueueFullPolicy.DROP_OLDEST)
    store.commit(Batch(messages=samples(100)))
    sent_upto = store.fetch(0, 1000)[9].id  # the first 10 are with the broker
    assert store.commit(Batch(messages=samples(5, 100)), sent_upto).dropped == 5
    kept = [int(r.message.payload) for r in store.fetch(0, 1000)]
    assert kept == list(range(10)) + list(range(15, 105))


def test_old_command_ids_are_forgotten(tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db", 100, QueueFullPolicy.DROP_OLDEST)
    assert store.claim_command("old", "m1", 10.0) and store.claim_command("new", "m1", 500.0)
    store.forget_commands(100.0)
    assert store.claim_command("old", "m1", 600.0)
    assert not store.claim_command("new", "m1", 600.0)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.data())
def test_acks_delete_exactly_the_acked_rows(tmp_path: Path, kinds: list[bool],
                                            data: st.DataObject) -> None:
    """PUBACKed rows are deleted in runs of consecutive ids: whatever rows are acked (in
    any order, samples and other messages interleaved), exactly those go and the sample
    count stays right."""
    acked_at = data.draw(st.lists(st.integers(0, len(kinds) - 1), unique=True))
    store = Store(Path(tempfile.mkdtemp(dir=tmp_path)) / "o.db", 1000,
                  QueueFullPolicy.DROP_OLDEST)  # a new file per example
    store.commit(Batch(messages=[Message("t", b"%d" % i, sample=s) for i, s in enumerate(kinds)]))
    rows = store.fetch(0, 1000)
    acked = [rows[i] for i in acked_at]
    acked_ids = {r.id for r in acked}
    store.commit(Batch(acked_samples=[r.id for r in acked if r.message.sample],
                       acked_other=[r.id for r in acked if not r.message.sample]))
    left = store.fetch(0, 1000)
    assert [r.id for r in left] == [r.id for r in rows if r.id not in acked_ids]
    assert store.samples == sum(1 for r in left if r.message.sample)
    store.close()


OLD_SCHEMA = """
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, sample INTEGER NOT NULL,
                     topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL);
CREATE TABLE streams (machine TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE states (machine TEXT PRIMARY KEY, payload BLOB NOT NULL);
CREATE TABLE commands (id TEXT PRIMARY KEY, machine TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
INSERT INTO outbox(sample, topic, payload, retain) VALUES (1, 't', X'3431', 0);
INSERT INTO streams VALUES ('m1', 41);
INSERT INTO meta VALUES ('epoch', 1700000000000);
"""
"""An outbox file as agents before the streams' latest sample times wrote it."""


def test_an_old_outbox_file_opens_with_its_samples_and_seqs(tmp_path: Path) -> None:
    """The streams' latest sample times came with a new column: a file written before
    opens with everything it held, its streams' times unknown, and keeps them from its
    next commit on."""
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_SCHEMA)
    store = Store(path, 100, QueueFullPolicy.DROP_OLDEST)
    assert (store.epoch, store.samples, store.last_seqs) == (1700000000000, 1, {"m1": 41})
    assert store.latest_ms == {}
    assert [r.message.payload for r in store.fetch(0, 10)] == [b"41"]
    store.latest_ms["m1"] = 5_000  # what the stream does as it stamps a sample
    store.commit(Batch(messages=samples(1), seqs={"m1": 42}))
    store.close()
    again = Store(path, 100, QueueFullPolicy.DROP_OLDEST)
    assert (again.last_seqs, again.latest_ms) == ({"m1": 42}, {"m1": 5_000})
    again.close()


def test_a_streams_latest_time_is_written_with_its_seq_and_never_goes_back(
        tmp_path: Path) -> None:
    """A stream's latest sample time is written by the commits that carry its seq (the
    time of a stream without a new sample stays as it was), never lowered, and is what
    the next open reads."""
    path = tmp_path / "o.db"
    store = Store(path, 100, QueueFullPolicy.DROP_OLDEST)
    store.latest_ms.update(m1=12, m2=7)
    store.commit(Batch(messages=samples(3), seqs={"m1": 1, "m2": 0}))
    assert store.latest_times() == {"m1": 12, "m2": 7}
    store.latest_ms.update(m1=11, m2=9)  # m1: lower (never written), m2: no new seq
    store.commit(Batch(messages=samples(1), seqs={"m1": 2}))
    assert store.latest_times() == {"m1": 12, "m2": 7}
    store.commit(Batch(seqs={"m3": 0}))  # a stream whose time is not known
    assert store.latest_times() == {"m1": 12, "m2": 7}
    assert store.seqs() == {"m1": 2, "m2": 0, "m3": 0}
    store.close()
    assert Store(path, 100, QueueFullPolicy.DROP_OLDEST).latest_ms == {"m1": 12, "m2": 7}
