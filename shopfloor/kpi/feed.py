"""What the KPI engine takes from outside, as interfaces: the engine depends only on
shared modules, and a component plugs it in (the collector: `collector/live_kpi.py`).

- `StoredBatch`: telemetry that has been durably stored, with the time the write
  completed. The collector's `WrittenBatch` is one; a test or benchmark may build its own.
- `Publish`: publish one retained, QoS 1 message; the host decides how (the collector
  sends it through its own MQTT publish path)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Protocol

Publish = Callable[[str, bytes], None]


class StoredTelemetry(Protocol):
    """One stored telemetry message: its machine, its `ts` in ms since the epoch and
    its payload (a `shopfloor.shared.contract.Telemetry`)."""

    @property
    def machine(self) -> str: ...

    @property
    def ts_ms(self) -> int: ...

    @property
    def payload(self) -> object: ...


class StoredBatch(Protocol):
    """Messages stored together; `written_at` is when the write completed (UTC)."""

    @property
    def written_at(self) -> dt.datetime: ...

    def telemetry(self) -> Iterator[StoredTelemetry]: ...
