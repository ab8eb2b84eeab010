"""Collector fixtures: the example plant relocated onto the test's broker and InfluxDB,
and an in-process collector that is stopped after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shopfloor.collector.service import Collector
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.harness.plants import example_data, relocate


@pytest.fixture
def make_plant(tmp_path: Path) -> Callable[..., Plant]:
    """plant(broker_port, influx_url, **collector_settings) -> a validated Plant."""

    def make(broker_port: int, influx_url: str, **collector: Any) -> Plant:
        data = relocate(example_data(), tmp_path, broker_port, influx_url)
        data["collector"].update({"metrics_port": None, **collector})
        return parse_plant(data, "test-plant")

    return make


@pytest.fixture
def run_collector() -> Iterator[Callable[[Plant], Collector]]:
    started: list[Collector] = []

    def run(plant: Plant) -> Collector:
        collector = Collector(plant).start(metrics_port=0)
        started.append(collector)
        assert collector.wait_ready(30), "collector did not reach InfluxDB"
        return collector

    yield run
    for collector in started:
        collector.stop()
