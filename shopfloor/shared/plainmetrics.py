"""Prometheus metrics kept as plain numbers and read when scraped.

`prometheus_client`'s `Counter.inc` and `Histogram.observe` take a lock and walk a few
objects per call (~1-2 us): a cost a hot path pays thousands of times a second (the
edge's polls, the collector's messages). Here the hot path adds to plain ints, and
`collect()` (run by `prometheus_client` at scrape time, on the status server's thread)
turns them into metric families; the exposition stays `prometheus_client`'s. Writers
are one thread each (the edge's event loop, the collector's batch hand-over under its
own lock); a scrape reads numbers the GIL keeps whole."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector


class PlainCounter(Collector):
    """A counter without labels: `inc()` adds to an int."""

    def __init__(self, name: str, documentation: str) -> None:
        self.value = 0
        self._name = name
        self._documentation = documentation

    def inc(self, amount: int = 1) -> None:
        self.value += amount

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self.value)


class CounterFamily(Collector):
    """A labelled counter family whose samples are read from the caller's own objects
    when scraped: `rows()` yields (label values, value) pairs."""

    family: type[CounterMetricFamily] | type[GaugeMetricFamily] = CounterMetricFamily

    def __init__(self, name: str, documentation: str, labels: Sequence[str],
                 rows: Callable[[], Iterable[tuple[Sequence[str], float]]]) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = list(labels)
        self._rows = rows

    def collect(self) -> Iterator[Metric]:
        family = self.family(self._name, self._documentation, labels=self._labels)
        for labels, value in self._rows():
            family.add_metric(list(labels), value)
        yield family


class GaugeFamily(CounterFamily):
    """A labelled gauge family read like `CounterFamily`."""

    family = GaugeMetricFamily


class BucketHistogram(Collector):
    """A histogram of plain per-bucket counts: bucket i counts values <= bounds[i], the
    last one the rest (+Inf). `observe` is for one writer thread (no lock); `add` takes
    whole batches of pre-bucketed observations under a lock."""

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def add(self, counts: Sequence[int], total: float) -> None:
        """Add per-bucket counts (len(bounds) + 1 of them) and their sum."""
        with self._lock:
            for i, n in enumerate(counts):
                self._counts[i] += n
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip((*map(str, self._bounds), "+Inf"), counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(self._name, self._documentation, buckets=buckets,
                                    sum_value=total)
