"""The outbox on a disk that fills up, on a damaged file and with rows that cannot be
published — real SQLite files. A full disk is made for real with `queue.max_bytes`
(SQLite's max_page_count), which fails a commit with SQLITE_FULL exactly like a full
filesystem."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from shopfloor.edge.errors import OutboxError
from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.store import BadRow, Batch, Message, Store
from shopfloor.shared.enums import QueueFullPolicy

MAX_BYTES = 65_536
PAYLOAD = b'{"v": 1, "values": {"x": "' + b"y" * 300 + b'"}}'


def store_at(path: Path, max_bytes: int | None = MAX_BYTES) -> Store:
    return Store(path, 1_000_000, QueueFullPolicy.DROP_OLDEST, max_bytes)


def sample(seq: int) -> Message:
    return Message("shopfloor/v1/s/l/m/telemetry", PAYLOAD + b" %d" % seq, sample=True)


def fill(store: Store) -> int:
    """Commit samples until the file is full; returns how many went in."""
    n = 0
    while True:
        try:
            store.commit(Batch(messages=[sample(n)], seqs={"m": n}))
        except OutboxError as exc:
            assert "full" in str(exc)
            return n
        n += 1


def test_a_full_outbox_still_commits_its_bookkeeping_and_takes_rows_again(tmp_path):
    store = store_at(tmp_path / "o.db")
    held = fill(store)
    assert 10 < held < 200 and store.samples == held
    with pytest.raises(OutboxError):
        store.commit(Batch(messages=[sample(held)], seqs={"m": held}))
    assert store.samples == held and store.seqs() == {"m": held - 1}  # rolled back whole
    acked = [row.id for row in store.fetch(0, 20)]
    store.commit(Batch(messages=[sample(held)], seqs={"m": held}).bookkeeping())
    assert store.seqs() == {"m": held}  # a seq is used even when its sample is not kept
    store.commit(Batch(acked_samples=acked))
    store.commit(Batch(messages=[sample(held + 1)], seqs={"m": held + 1}))  # space again
    assert store.samples == held - 20 + 1


def outbox_on(path: Path, pending_max: int) -> tuple[Outbox, EdgeMetrics]:
    metrics = EdgeMetrics()
    return Outbox(store_at(path), metrics, pending_max=pending_max), metrics


def dropped(metrics: EdgeMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("shopfloor_edge_dropped_total", {"reason": reason})
    return value or 0.0


def test_a_full_disk_keeps_a_bounded_backlog_and_drops_it_with_its_seqs_counted(tmp_path):
    async def run() -> None:
        outbox, metrics = outbox_on(tmp_path / "o.db", pending_max=30)
        n = 0
        while outbox.problem is None:
            outbox.put(sample(outbox.next_seq("m")))
            n += 1
            await outbox.commit()
        assert "full" in outbox.problem
        for _ in range(100):  # polling goes on while the disk is full
            outbox.put(sample(outbox.next_seq("m")))
            n += 1
            await outbox.commit()
        stored = outbox._store.fetch(0, 10_000)  # what the file holds
        waiting = len(outbox._batch.messages)
        assert waiting == 30  # memory stays bounded
        assert dropped(metrics, "outbox_unwritable") == n - len(stored) - waiting
        # the seqs of what was dropped are used: the next sample continues after them
        assert outbox._store.seqs() == {"m": n - 1}
        for row in stored:  # the broker is back: PUBACKs free the file
            outbox.ack(row.id, sample=True)
        await outbox.commit()  # the deletions commit; the waiting samples next
        await outbox.commit()
        assert outbox.problem is None
        tail = [int(r.message.payload.rsplit(b" ", 1)[1]) for r in outbox._store.fetch(0, 10_000)]
        assert tail == list(range(n - 30, n))  # the newest waited and are kept, in order

    asyncio.run(run())


def test_rows_that_cannot_be_published_are_quarantined_and_the_rest_flows(tmp_path):
    path = tmp_path / "o.db"
    store = store_at(path, None)
    store.commit(Batch(messages=[sample(i) for i in range(5)]))
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE outbox SET payload = 'text, not a blob' WHERE id = 2")
    db.execute("UPDATE outbox SET topic = 'shopfloor/v1/#' WHERE id = 3")
    db.execute("UPDATE outbox SET retain = 'x' WHERE id = 4")
    db.commit()
    db.close()

    async def run() -> None:
        metrics = EdgeMetrics()
        outbox = Outbox(store_at(path, None), metrics)
        fetched = outbox.fetch(0, 100)
        assert [row_id for row_id, _ in fetched.rows] == [1, 5] and fetched.upto == 5
        outbox.fetch(0, 100)  # read twice: quarantined once
        await outbox.commit()
        assert metrics.registry.get_sample_value("shopfloor_edge_quarantined_total") == 3
        assert [row_id for row_id, _ in outbox.fetch(0, 100).rows] == [1, 5]
        assert outbox.depth == 2
        await outbox.close()

    asyncio.run(run())
    db = sqlite3.connect(path)
    kept = db.execute("SELECT id, payload, reason FROM quarantine ORDER BY id").fetchall()
    assert [k[0] for k in kept] == [2, 3, 4]
    assert kept[0][1] == "text, not a blob" and "not a blob" in kept[0][2]
    assert "topic" in kept[1][2] and "retain" in kept[2][2]


def test_a_new_emptied_or_replaced_file_starts_a_new_epoch(tmp_path):
    path = tmp_path / "o.db"
    first = store_at(path)
    epoch = first.epoch
    first.commit(Batch(seqs={"m": 41}))
    first.close()
    again = store_at(path)
    assert again.epoch == epoch and again.last_seqs == {"m": 41}
    again.close()
    path.write_bytes(b"")  # emptied
    emptied = store_at(path)
    assert emptied.epoch != epoch and emptied.last_seqs == {}
    emptied.close()
    path.unlink()
    (tmp_path / "o.db-wal").unlink(missing_ok=True)
    assert store_at(path).epoch not in (epoch, emptied.epoch)


def test_a_damaged_streams_page_is_refused_at_open(tmp_path):
    path = tmp_path / "o.db"
    store = store_at(path, None)
    store.commit(Batch(messages=[sample(i) for i in range(50)], seqs={"m": 49}))
    store.close()
    corrupt_table_page(path, "streams")
    with pytest.raises(OutboxError, match="cannot open"):
        store_at(path, None)


def corrupt_table_page(path: Path, table: str) -> None:
    """Overwrite the root page of `table` with garbage, as a bad sector would."""
    db = sqlite3.connect(path)
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    (size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * size)
        f.write(b"\xde\xad\xbe\xef" * (size // 4))


def test_a_supervised_task_that_crashes_makes_the_agent_unhealthy_for_a_while():
    from shopfloor.edge.supervise import HEALTHY_AFTER_S, TaskHealth, supervise

    now = [100.0]
    metrics = EdgeMetrics()
    health = TaskHealth(metrics, clock=lambda: now[0])
    runs = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("row 7 is not bytes")

    asyncio.run(supervise("publisher", flaky, health))
    assert len(runs) == 2
    assert health.problems() == ["task publisher crashed 0 s ago: RuntimeError: row 7 is not bytes"]
    assert metrics.registry.get_sample_value("shopfloor_edge_task_crashes_total",
                                             {"task": "publisher"}) == 1
    now[0] += HEALTHY_AFTER_S
    assert health.problems() == []


def test_bad_row_reason_is_bounded():
    from shopfloor.edge.store import _row

    row = _row(1, "t" * 10_000 + "#", b"{}", 0, 1)
    assert isinstance(row, BadRow) and len(row.reason) < 120


def test_problems_fit_the_status_contract_however_long_or_many():
    """A long outbox path makes a long reason: the status must still validate (a status
    that does not would crash the task that publishes it)."""
    from shopfloor.edge.agent import _status_problems
    from shopfloor.shared.contract import MAX_PROBLEM_CHARS, MAX_PROBLEMS, AgentStatus

    many = [f"outbox: commit to /{'d' * 900}/{i} failed: database or disk is full"
            for i in range(MAX_PROBLEMS + 7)]
    problems = _status_problems(many)
    status = AgentStatus(online=True, agent="edge1", problems=problems)
    assert len(status.problems) == MAX_PROBLEMS
    assert all(len(p) <= MAX_PROBLEM_CHARS for p in status.problems)
    assert status.problems[-1] == "and 8 more (see /healthz)"
    assert _status_problems([]) is None
