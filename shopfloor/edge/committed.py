"""Committed rows on their way from the outbox to the publisher, in memory. A commit
knows every new row's id (`Store.commit`), so the publisher takes (id, message) pairs
from here instead of reading back from SQLite what was just written — reading back
was about half of the publish side's time.

The queue is only used while it holds *every* committed row after its `start`: the
publisher reads SQLite up to `start` and takes the rest from here. It starts over
(`start` = the id before a commit's first row) whenever it cannot vouch for what came
before — at start-up (a backlog from the last run), after a failed commit, after rows
were dropped (queue full) — and it is bounded: beyond `MEMORY_ROWS` the oldest leave
memory (`start` moves past them; they are still in SQLite), so an hour-long broker
outage at 1,000 messages a second costs SQLite reads, not a gigabyte of RAM.
"""

from __future__ import annotations

from collections import deque

from shopfloor.edge.store import LAST_ID, Message

MEMORY_ROWS = 5_000
"""At most this many committed rows wait in memory (~3 MB of telemetry); the publisher
normally trails the commits by a few hundred."""


class CommittedRows:
    """Owned by the event loop thread (the outbox adds, the publisher takes)."""

    def __init__(self, bound: int = MEMORY_ROWS) -> None:
        self._rows: deque[tuple[int, Message]] = deque()
        self._bound = bound
        self.start = LAST_ID
        """Every committed row with a higher id is in the queue (LAST_ID: none is known
        to be; read SQLite)."""
        self._end: int | None = None
        """The last id added since the queue started over (None: it must start over)."""

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, after_id: int | None, messages: list[Message]) -> None:
        """A commit's new rows: `messages` with the ids after_id + 1, + 2, ... (None:
        ids unknown, forget everything). A commit that does not follow the last one
        added starts the queue over at its own rows."""
        if after_id is None:
            self.forget()
            return
        rows = self._rows
        if after_id != self._end:
            rows.clear()
            self.start = after_id
        rows.extend(zip(range(after_id + 1, after_id + 1 + len(messages)), messages, strict=True))
        self._end = after_id + len(messages)
        for _ in range(len(rows) - self._bound):
            self.start = rows.popleft()[0]

    def forget(self) -> None:
        """Hold nothing until the next commit starts the queue over (rows may have
        been dropped from SQLite, or committed without this queue knowing)."""
        self._rows.clear()
        self.start = LAST_ID
        self._end = None

    def take(self, after_id: int, limit: int) -> list[tuple[int, Message]] | None:
        """Up to `limit` rows with ids above `after_id`, in order, out of the queue;
        None when the queue does not hold every committed row after `after_id` (read
        SQLite up to `start` first)."""
        if after_id < self.start:
            return None
        rows = self._rows
        while rows and rows[0][0] <= after_id:  # read from SQLite already
            rows.popleft()
        taken = [rows.popleft() for _ in range(min(limit, len(rows)))]
        self.start = taken[-1][0] if taken else after_id
        return taken
