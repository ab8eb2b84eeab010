"""Session-wide real services. Tests that need them take these fixtures; each test uses
its own topics / database names so that tests do not see each other's data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.harness.services import InfluxDB, Mosquitto, VictoriaMetrics, running
from tests.harness.tls import Pki, TlsMosquitto, make_pki

# Hypothesis' per-example deadline (200 ms) is a timed test: on a shared, loaded machine an
# example of a fast test took 259 ms once and failed the run. Speed is measured in
# benchmarks/; here no example fails for being slow.
settings.register_profile("shopfloor", deadline=None)
settings.load_profile("shopfloor")


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with running(Mosquitto(tmp_path_factory.mktemp("mosquitto"))) as broker:
        yield broker


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    with running(InfluxDB(tmp_path_factory.mktemp("influxdb"))) as server:
        yield server


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    with running(VictoriaMetrics(tmp_path_factory.mktemp("victoria"))) as server:
        yield server


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates made for this run: a plant CA, a broker and a client certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_mosquitto(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsMosquitto]:
    """mosquitto with a TLS listener that requires a client certificate of `pki`'s CA."""
    with running(TlsMosquitto(tmp_path_factory.mktemp("tls-mosquitto"), pki)) as broker:
        yield broker


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker for one test alone (for tests that stop or restart it)."""
    with running(Mosquitto(tmp_path / "mosquitto")) as broker:
        yield broker


@pytest.fixture
def own_influxdb(tmp_path: Path) -> Iterator[InfluxDB]:
    """An InfluxDB for one test alone (for tests that stop or restart it)."""
    with running(InfluxDB(tmp_path / "influxdb")) as server:
        yield server


@pytest.fixture
def unique_site() -> str:
    """A site id no other test uses, so topics never collide on a shared broker."""
    return f"t{uuid.uuid4().hex[:10]}"
