"""Fixtures of the simulator's tests: plants on free loopback ports, model behaviours
without random failures (for exact assertions), the anyio backend for async tests."""

from __future__ import annotations

from typing import Any

import pytest

from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from shopfloor.sim.params import Behaviour
from tests.harness.plants import example_data
from tests.harness.services import free_port

CALM = Behaviour(jam_mtbf_s=1e12, breakdown_mtbf_s=1e12, reject_rate_min=0.0, reject_rate_max=0.0)
"""No jams, breakdowns or rejects: the model only does what a test makes it do."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def example_on_port(port: int | None = None) -> Plant:
    """The example plant (4 machines, units 1..4) with every machine on one free port."""
    return parse_plant(example_on_port_data(port or free_port()))


def example_on_port_data(port: int) -> dict[str, Any]:
    data = example_data()
    opcua_port = free_port()
    for machine in data["machines"].values():
        if machine["connection"].get("protocol") == "opcua":
            machine["connection"]["endpoint"] = f"opc.tcp://127.0.0.1:{opcua_port}/"
        else:
            machine["connection"]["port"] = port
    return data
