"""Plain-number metrics (`shared/plainmetrics.py`) expose exactly what
`prometheus_client`'s own Counter and Histogram would for the same observations
(its `_created` series aside: a plain metric has no creation time)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shopfloor.shared.plainmetrics import (
    BucketHistogram,
    CounterFamily,
    GaugeFamily,
    PlainCounter,
)

BOUNDS = (0.0005, 0.001, 0.01, 0.02, 0.5, 1.0, 5.0)


def exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if "_created" not in line]


@settings(derandomize=True, max_examples=200)
@given(st.lists(st.one_of(st.sampled_from(BOUNDS), st.floats(0, 10, allow_nan=False))))
def test_bucket_histogram_exposes_what_prometheus_histogram_does(values: list[float]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("h_seconds", "doc", buckets=BOUNDS, registry=theirs)
    plain = BucketHistogram("h_seconds", "doc", BOUNDS)
    ours.register(plain)
    for value in values:
        reference.observe(value)
        plain.observe(value)
    assert exposition(ours) == exposition(theirs)


@settings(derandomize=True, max_examples=100)
@given(st.dictionaries(st.tuples(st.sampled_from("abc"), st.sampled_from(["x", "y"])),
                       st.integers(0, 10**9)),
       st.integers(0, 10**9))
def test_counters_expose_what_prometheus_counters_do(by_label: dict[tuple[str, str], int],
                                                     total: int) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    labelled = Counter("c", "doc", ["machine", "reason"], registry=theirs)
    single = Counter("d", "doc", registry=theirs)
    for labels, value in by_label.items():
        labelled.labels(*labels).inc(value)
    single.inc(total)
    gauge = Gauge("g", "doc", ["machine", "reason"], registry=theirs)
    for labels, value in by_label.items():
        gauge.labels(*labels).set(value % 2)
    ours.register(CounterFamily("c", "doc", ["machine", "reason"], lambda: by_label.items()))
    ours.register(GaugeFamily("g", "doc", ["machine", "reason"],
                              lambda: ((k, v % 2) for k, v in by_label.items())))
    plain = PlainCounter("d", "doc")
    plain.inc(total)
    ours.register(plain)
    assert sorted(exposition(ours)) == sorted(exposition(theirs))
