"""The collector's own counters, written to InfluxDB as `collector_stats` (one point every
`collector.stats_period_s`), so that dashboards can show what otherwise only /metrics
has: dead letters, lost / late / duplicate samples, messages pending acknowledgement and
the end-to-end lag (write time - sample ts) over the period. Fields: docs/influxdb-schema.md.

Counters are cumulative since the collector started (dashboards take
`non_negative_difference`); the lag fields summarise the period just ended. The counters
are the collector's Prometheus metrics, read, never counted a second time.

The point is written by a thread of its own through the collector's LineWriter, once, with
no retry: a failed stats write is logged (first at ERROR, repeats at DEBUG) and dropped,
and never delays or fails the telemetry path."""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from shopfloor.collector.messages import Reason
from shopfloor.collector.metrics import Metrics
from shopfloor.shared import schema
from shopfloor.shared.influx import DatabaseUnavailable, LinesRejected
from shopfloor.shared.logs import FailureLog

log = logging.getLogger(__name__)
LAG_RESERVOIR = 100_000  # lags kept per period for the percentiles (uniform sample beyond)


@dataclass(frozen=True, slots=True)
class LagSummary:
    """Lag of the samples written in one period, in seconds; `count` samples seen."""

    count: int
    p50_s: float
    p99_s: float
    max_s: float


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 < q <= 1) of an ascending, non-empty sequence."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(lags: Iterable[float], count: int | None = None,
              max_s: float | None = None) -> LagSummary | None:
    """p50/p99 of `lags`; `count` and `max_s` default to theirs (pass the true ones when
    `lags` is a sample). None when there is nothing to summarise."""
    ordered = sorted(lags)
    if not ordered:
        return None
    return LagSummary(count if count is not None else len(ordered), percentile(ordered, 0.5),
                      percentile(ordered, 0.99), max_s if max_s is not None else ordered[-1])


class LagWindow:
    """Lags of one period: `add` from the writer thread, `take` from the stats thread.
    Keeps at most `capacity` values (a uniform reservoir sample); count and max are exact."""

    def __init__(self, capacity: int = LAG_RESERVOIR) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._reset()

    def _reset(self) -> None:
        self._lags: list[float] = []
        self._count = 0
        self._max = -math.inf

    def add(self, lags: Iterable[float]) -> None:
        values = list(lags)
        if not values:
            return
        with self._lock:
            room = max(0, self._capacity - len(self._lags))
            self._lags.extend(values[:room])
            self._max = max(self._max, max(values))
            self._count += min(room, len(values))
            for lag in values[room:]:  # reservoir sampling (Algorithm R) once full
                self._count += 1
                slot = self._rng.randrange(self._count)
                if slot < self._capacity:
                    self._lags[slot] = lag

    def take(self) -> LagSummary | None:
        """The period's summary (None without samples); starts the next period."""
        with self._lock:
            lags, count, max_s = self._lags, self._count, self._max
            self._reset()
        return summarize(lags, count, max_s) if count else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Cumulative counters since start (messages / values / samples) and the period's lag."""

    received: int  # MQTT messages received, valid or not
    written: int  # point values stored
    dead_letters: Mapping[str, int]  # per Reason value
    lost: int
    duplicates: int
    late: int
    pending: int  # received, not yet acknowledged (a gauge, not a counter)
    lag: LagSummary | None


def stats_fields(snapshot: Snapshot) -> dict[str, object]:
    """The point's fields: integers for counts, floats (seconds) for the lag."""
    fields: dict[str, object] = {
        "received": snapshot.received,
        "written": snapshot.written,
        "dead_letters": sum(snapshot.dead_letters.values()),
        **{f"dead_letters_{r.value}": snapshot.dead_letters.get(r.value, 0) for r in Reason},
        "lost": snapshot.lost,
        "duplicates": snapshot.duplicates,
        "late": snapshot.late,
        "pending": snapshot.pending,
    }
    if snapshot.lag is not None:
        fields.update(lag_samples=snapshot.lag.count, lag_p50_s=float(snapshot.lag.p50_s),
                      lag_p99_s=float(snapshot.lag.p99_s), lag_max_s=float(snapshot.lag.max_s))
    return fields


def stats_line(site: str, collector: str, snapshot: Snapshot, ts_ms: int) -> str:
    """One `collector_stats` line (tags site, collector = the collector's client id)."""
    text = schema.line(schema.COLLECTOR_STATS,
                       {schema.TAG_SITE: site, schema.TAG_COLLECTOR: collector},
                       stats_fields(snapshot), ts_ms)
    assert text is not None  # the counters are always storable
    return text


def _by_label(metric: object, label: str) -> dict[str, int]:
    return {s.labels[label]: int(s.value) for m in metric.collect()  # type: ignore[attr-defined]
            for s in m.samples if s.name.endswith("_total")}


def read_snapshot(metrics: Metrics, received: int, pending: int,
                  lag: LagSummary | None) -> Snapshot:
    """A Snapshot from the collector's Prometheus metrics."""
    return Snapshot(
        received=received, written=int(metrics.total(metrics.values_written)),
        dead_letters=_by_label(metrics.dead_letters, "reason"),
        lost=int(metrics.total(metrics.lost)), duplicates=int(metrics.total(metrics.duplicates)),
        late=int(metrics.total(metrics.late)), pending=pending, lag=lag,
    )


class StatsReporter:
    """Every `period_s`: take a snapshot, write its line once (no retry), move on.
    `write` is the collector's LineWriter.write, or None while there is none yet."""

    def __init__(self, site: str, collector: str, period_s: float,
                 snapshot: Callable[[], Snapshot],
                 write: Callable[[], Callable[[list[str]], None] | None],
                 stop: threading.Event, clock: Callable[[], float]) -> None:
        self._site, self._collector, self._period_s = site, collector, period_s
        self._snapshot, self._write, self._stop, self._clock = snapshot, write, stop, clock
        self.failures = FailureLog(log, "collector_stats write")
        self.written = 0  # points written

    def run(self) -> None:
        while not self._stop.wait(self._period_s):
            self.report()

    def report(self) -> bool:
        """Write one point now; False when it could not be written (logged)."""
        line = stats_line(self._site, self._collector, self._snapshot(),
                          int(self._clock() * 1000))
        write = self._write()
        if write is None:
            return False
        try:
            write([line])
        except (DatabaseUnavailable, LinesRejected) as exc:
            self.failures.failure("dropped one point: %s", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - stats must never stop the collector
            self.failures.failure("dropped one point (unexpected): %r", exc)
            return False
        self.failures.success()
        self.written += 1
        return True
