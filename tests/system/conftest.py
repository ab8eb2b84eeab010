"""System fixtures: a broker and a database of the module's own (fault tests stop
them), and the whole chain running on them as real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.collector.helpers import wait_for
from tests.harness.services import InfluxDB, Mosquitto
from tests.system.chain import Chain, every_line


@pytest.fixture(scope="module")
def module_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def module_influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory, module_mosquitto: Mosquitto,
    module_influxdb: InfluxDB,
) -> Iterator[Chain]:
    """The chain, shared by the fault tests of a module (each one leaves it healthy)."""
    running = Chain(tmp_path_factory.mktemp("chain"), module_mosquitto, module_influxdb,
                    lines=every_line).start()
    try:
        wait_for(running.healthy, 30)
        yield running
    finally:
        running.stop()


@pytest.fixture
def healthy_chain(chain: Chain) -> Chain:
    """The shared chain, checked healthy before the test injects its fault."""
    wait_for(chain.healthy, 30)
    return chain
