"""When the outbox commits: a message after a quiet spell at once (what arrived with it
shares the commit), a stream of messages at most once per COMMIT_INTERVAL_S, a command
result at once, PUBACKed deletions alone and retries after a failure later. The rule
is pure (`commit_delay_s`); the loop runs against a real SQLite outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.outbox import (
    COMMIT_INTERVAL_S,
    IDLE_COMMIT_S,
    Outbox,
    commit_delay_s,
)
from shopfloor.edge.store import Batch, Message, Store
from shopfloor.shared.enums import QueueFullPolicy


class CountingStore(Store):
    """The real store, remembering how many new messages each commit carried."""

    commits: list[int]

    def commit(self, batch: Batch, sent_upto: int = 0) -> int:
        self.commits.append(len(batch.messages))
        return super().commit(batch, sent_upto)


def store_at(path: Path) -> CountingStore:
    store = CountingStore(path / "outbox.sqlite3", 100_000, QueueFullPolicy.DROP_OLDEST)
    store.commits = []
    return store


def sample(n: int) -> Message:
    return Message("shopfloor/v1/s/l/m/telemetry", b'{"seq": %d}' % n, sample=True)


batches = st.builds(
    Batch,
    messages=st.lists(st.just(sample(0)), max_size=2),
    seqs=st.dictionaries(st.just("m"), st.integers(0, 9), max_size=1),
    acked_samples=st.lists(st.integers(1, 9), max_size=2),
)


@settings(derandomize=True, max_examples=200)
@given(batches, st.booleans(), st.booleans())
def test_the_commit_rule_bounds_every_wait_and_the_commit_rate(
    batch: Batch, urgent: bool, failing: bool
) -> None:
    delay = commit_delay_s(batch, urgent, failing)
    if not batch:
        assert delay is None  # nothing to write: no commit at all
        return
    assert delay is not None
    if urgent:
        assert delay == 0.0  # a caller waits for it
    elif batch.messages and not failing:
        assert delay == COMMIT_INTERVAL_S  # bounded wait, bounded commit rate
    else:
        assert delay == IDLE_COMMIT_S  # bookkeeping alone, or a retry: no hurry
    assert delay <= IDLE_COMMIT_S


@settings(derandomize=True, max_examples=100)
@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_a_busy_agent_commits_less_often_the_more_each_commit_carries(
    fewer: int, more: int
) -> None:
    """The interval between commits of new messages grows with the messages the last
    commit carried, from COMMIT_INTERVAL_S (a few: ~500 a second or less) to
    IDLE_COMMIT_S, never beyond."""
    fewer, more = sorted((fewer, more))
    batch = Batch(messages=[sample(0)])
    short = commit_delay_s(batch, False, False, fewer)
    long = commit_delay_s(batch, False, False, more)
    assert short is not None and long is not None
    assert COMMIT_INTERVAL_S <= short <= long <= IDLE_COMMIT_S
    assert commit_delay_s(batch, False, False, 5) == COMMIT_INTERVAL_S  # 500/s at 10 ms
    assert commit_delay_s(batch, False, False, 50) == IDLE_COMMIT_S  # 1,000/s: 50 per 50 ms
    assert commit_delay_s(batch, True, False, more) == 0.0  # a caller waits


async def passes(outbox_store: CountingStore, want: int, limit: int = 20) -> int:
    """Run the event loop pass by pass (no clock involved) until `want` commits."""
    for n in range(limit):
        if len(outbox_store.commits) >= want:
            return n
        await asyncio.sleep(0)
    return limit


def test_a_message_after_a_quiet_spell_commits_in_the_next_loop_passes(tmp_path: Path) -> None:
    store = store_at(tmp_path)

    async def main() -> None:
        outbox = Outbox(store, EdgeMetrics())
        task = asyncio.create_task(outbox.run())
        await asyncio.sleep(0)
        for n in range(50):  # arrived together (one loop pass): one commit
            outbox.put(sample(n))
        assert await passes(store, 1) < 20
        assert store.commits == [50]
        assert outbox.committed.is_set()
        task.cancel()
        await outbox.close()

    asyncio.run(main())


def test_a_busy_stream_commits_at_most_once_per_interval_and_loses_nothing(
    tmp_path: Path,
) -> None:
    store = store_at(tmp_path)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        outbox = Outbox(store, EdgeMetrics())
        task = asyncio.create_task(outbox.run())
        started = loop.time()
        for n in range(3_000):  # one message per loop pass
            outbox.put(sample(n))
            await asyncio.sleep(0)
        elapsed = loop.time() - started
        await asyncio.wait_for(_until(lambda: sum(store.commits) == 3_000), 30)
        task.cancel()
        await outbox.close()
        return elapsed + COMMIT_INTERVAL_S

    elapsed = asyncio.run(main())
    assert sum(store.commits) == 3_000
    assert 1 < len(store.commits) <= 2 + elapsed / COMMIT_INTERVAL_S


def test_a_command_result_commits_at_once_even_right_after_a_commit(tmp_path: Path) -> None:
    store = store_at(tmp_path)

    async def main() -> None:
        outbox = Outbox(store, EdgeMetrics())
        task = asyncio.create_task(outbox.run())
        outbox.put(sample(0))
        await passes(store, 1)
        outbox.put(Message("shopfloor/v1/s/l/m/cmd/result", b"{}"), urgent=True)
        assert await passes(store, 2) < 20  # not COMMIT_INTERVAL_S later
        assert store.commits == [1, 1]
        task.cancel()
        await outbox.close()

    asyncio.run(main())


async def _until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.005)
