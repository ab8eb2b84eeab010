"""Stores a batch durably: retries with capped, jittered backoff while InfluxDB is down
(acknowledging nothing meanwhile), and when InfluxDB refuses lines (HTTP 400 partial
write, field type conflict) splits the batch in halves until the bad lines are found,
so that they are dead-lettered and the rest is stored. Rewriting good lines during the
split is harmless: same series and timestamp overwrite."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shopfloor.shared.backoff import Backoff
from shopfloor.shared.influx import DatabaseUnavailable, LinesRejected, LineWriter, open_writer
from shopfloor.shared.logs import FailureLog
from shopfloor.shared.plant import Database

log = logging.getLogger(__name__)
BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 5.0


def write_splitting(writer: LineWriter, lines: list[str]) -> list[tuple[str, str]]:
    """Write `lines`; returns the (line, reason) InfluxDB refused one by one.
    DatabaseUnavailable propagates (the caller retries the whole batch)."""
    if not lines:
        return []
    try:
        writer.write(lines)
        return []
    except LinesRejected as exc:
        if len(lines) == 1:
            return [(lines[0], exc.detail)]
    half = len(lines) // 2
    return write_splitting(writer, lines[:half]) + write_splitting(writer, lines[half:])


class DurableWriter:
    """Owns the database connection; `store` returns only once the lines are written or
    `stop` is set (then raises DatabaseUnavailable)."""

    def __init__(self, config: Database, stop: threading.Event,
                 on_connected: Callable[[LineWriter], None] | None = None) -> None:
        self._config = config
        self._stop = stop
        self._on_connected = on_connected
        self.writer: LineWriter | None = None
        self._needs_prepare = False
        self.failed_attempts = 0
        self.failures = FailureLog(log, f"InfluxDB {config.url}")

    @property
    def up(self) -> bool:
        return self.writer is not None and not self.failures.failing

    def connect(self) -> LineWriter:
        """Open (detect API, create database) with backoff until it works or stop."""
        for delay in Backoff(BACKOFF_START_S, BACKOFF_MAX_S).delays():
            try:
                return self._attempt_connect()
            except DatabaseUnavailable as exc:
                self.failures.failure("cannot use it yet (retrying): %s", exc)
            if self._stop.wait(delay):
                break
        raise DatabaseUnavailable("stopped before InfluxDB could be reached")

    def _attempt_connect(self) -> LineWriter:
        if self.writer is None:
            writer = open_writer(self._config)
            if self._on_connected is not None:
                self._on_connected(writer)
            self.writer = writer
        elif self._needs_prepare:
            self.writer.prepare()
        self._needs_prepare = False
        self.failures.success()
        return self.writer

    def store(self, lines: list[str]) -> list[tuple[str, str]]:
        """Write until done; returns the lines refused by InfluxDB, with reasons."""
        for delay in Backoff(BACKOFF_START_S, BACKOFF_MAX_S).delays():
            try:
                writer = self.writer if not self._needs_prepare else None
                rejected = write_splitting(writer or self._attempt_connect(), lines)
                self.failures.success()
                return rejected
            except DatabaseUnavailable as exc:
                self._needs_prepare = True
                self.failed_attempts += 1
                self.failures.failure("write failed, nothing acknowledged, retrying: %s", exc)
            if self._stop.wait(delay):
                break
        raise DatabaseUnavailable("stopped while InfluxDB was unavailable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
