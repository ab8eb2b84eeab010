"""The hook for work that follows a durable write (live KPIs): `BatchSink` and the
`WrittenBatch` it receives. See the package docstring for the contract."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.shared.logs import FailureLog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WrittenBatch:
    """Messages of one batch, in arrival order, after InfluxDB accepted them.
    `written_at` is the wall-clock time (UTC) the write completed."""

    messages: Sequence[ParsedMessage]
    written_at: dt.datetime

    def telemetry(self) -> Iterator[ParsedMessage]:
        return (m for m in self.messages if m.kind is Kind.TELEMETRY)

    def states(self) -> Iterator[ParsedMessage]:
        return (m for m in self.messages if m.kind is Kind.STATE)

    def statuses(self) -> Iterator[ParsedMessage]:
        return (m for m in self.messages if m.kind is Kind.STATUS)


@runtime_checkable
class BatchSink(Protocol):
    """Something that wants every durably written batch (e.g. the live OEE engine)."""

    def on_batch(self, batch: WrittenBatch) -> None: ...


class SinkRunner:
    """Calls each sink in order; a failing sink is logged (once) and never stops the rest."""

    def __init__(self) -> None:
        self._sinks: list[tuple[BatchSink, FailureLog]] = []

    def add(self, sink: BatchSink) -> None:
        self._sinks.append((sink, FailureLog(log, f"sink {type(sink).__name__}")))

    def __len__(self) -> int:
        return len(self._sinks)

    def deliver(self, batch: WrittenBatch) -> None:
        for sink, failures in self._sinks:
            try:
                sink.on_batch(batch)
            except Exception as exc:  # noqa: BLE001 - a sink must never stop the collector
                failures.failure("on_batch failed: %r", exc)
            else:
                failures.success()
