"""What every driver must do, tested the same way for each protocol against a real
server of it (a `Rig` per protocol, `RIG` in tests/edge/drivers/<protocol>/rig.py; a
protocol without one fails `test_every_driver_has_a_rig`). Only the `Driver` interface
is used: plan, read, read_point, write, close, and the failure contract (a silent device
is a failed reading, never an exception out of `read`)."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shopfloor.edge.drivers import Driver, build_drivers, factories
from shopfloor.edge.errors import DeviceError
from shopfloor.shared.contract import PointValue
from shopfloor.shared.enums import DataType
from shopfloor.shared.plant import Plant, Point
from tests.edge.drivers.rig import Rig


def _rigs() -> dict[str, Callable[[], Iterator[Rig]]]:
    """Each protocol's rig: `RIG` in tests/edge/drivers/<protocol>/rig.py."""
    found = {}
    for folder in sorted(Path(__file__).parent.iterdir()):
        if (folder / "rig.py").exists():
            module = importlib.import_module(f"tests.edge.drivers.{folder.name}.rig")
            found[folder.name] = module.RIG
    return found


RIGS = _rigs()


def test_every_driver_has_a_rig() -> None:
    missing = sorted(set(factories()) - set(RIGS))
    assert not missing, f"add RIG in tests/edge/drivers/<protocol>/rig.py for {missing}"
    assert sorted(RIGS) == sorted(factories())


IMPORTS_OF_BUILD = (
    "import asyncio, sys\n"
    "from shopfloor.edge.drivers import build_drivers, known_protocols\n"
    "from shopfloor.shared.loader import parse_plant\n"
    "from shopfloor.sim.generate import plant_data\n"
    "plant = parse_plant(plant_data(machines=3, points=20, base_port=5020))\n"
    "before = set(sys.modules)\n"
    "async def build():\n"
    "    for driver in build_drivers(plant.machines, plant.agents[0]):\n"
    "        driver.close()\n"
    "asyncio.run(build())\n"
    "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    "print(' '.join(p for p in known_protocols()\n"
    "               if f'shopfloor.edge.drivers.{p}' in sys.modules))\n"
)


def test_an_agent_imports_only_the_drivers_of_its_machines() -> None:
    """Memory: the OPC UA driver (asyncua, cryptography: ~25 MB) stays out of an agent
    whose machines all speak Modbus (a fresh interpreter: this one imported them all)."""
    result = subprocess.run([sys.executable, "-c", IMPORTS_OF_BUILD], capture_output=True,
                            text=True, timeout=120, check=True)
    new_packages, drivers = result.stdout.splitlines()
    assert drivers == "modbus"
    assert "asyncua" not in new_packages.split() and "pymodbus" in new_packages.split()
    assert len(set(factories())) >= 2  # the test means something: more than one driver


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    yield from RIGS[request.param]()


def sample(point: Point, k: int) -> PointValue:
    """A value `point` can hold exactly, different for each k."""
    if point.type is DataType.BOOL:
        return k % 2 == 1
    if point.type is DataType.STRING:
        return f"WO{k:02d}"
    low = point.min if point.min is not None else 0.0
    high = point.max if point.max is not None else low + 100
    value = low + (k * 7) % max(1, int(high - low))
    if point.keeps_integer:
        return int(value)
    return float(value) + 0.5  # exact in float32 and at scale 0.01


def with_drivers(plant: Plant, body: Callable[[dict[str, Driver]], Any]) -> None:
    async def main() -> None:
        drivers = build_drivers(plant.machines, plant.agents[0])
        try:
            await body({mid: d for d in drivers for mid in d.machines})
        finally:
            for driver in drivers:
                driver.close()
                driver.close()  # idempotent

    asyncio.run(main())


def test_drivers_serve_every_machine_once(rig: Rig) -> None:
    async def body(serving: dict[str, Driver]) -> None:
        drivers = build_drivers(rig.plant.machines, rig.plant.agents[0])
        served = [mid for d in drivers for mid in d.machines]
        assert sorted(served) == sorted(rig.plant.machines)
        for driver in drivers:
            driver.close()

    with_drivers(rig.plant, body)


def test_a_read_gives_each_point_the_value_the_server_holds(rig: Rig) -> None:
    expected = {
        mid: {p.name: sample(p, k + i) for i, p in enumerate(m.points)}
        for k, (mid, m) in enumerate(rig.plant.machines.items())
    }
    for mid, machine in rig.plant.machines.items():
        for point in machine.points:
            rig.serve(mid, point, expected[mid][point.name])

    async def body(serving: dict[str, Driver]) -> None:
        for mid, machine in rig.plant.machines.items():
            driver = serving[mid]
            plan = driver.plan(mid, machine.points)
            assert plan == driver.plan(mid, list(machine.points))  # pure, equal plans
            reading = await driver.read(mid, [plan])
            assert reading.answered and not reading.errors and not reading.bad
            assert reading.values == expected[mid]
            assert all(type(v) is type(expected[mid][n]) for n, v in reading.values.items())
            assert reading.ts is None or reading.ts.utcoffset() is not None

    with_drivers(rig.plant, body)


def test_a_write_reads_back_what_it_says(rig: Rig) -> None:
    async def body(serving: dict[str, Driver]) -> None:
        for mid, machine in rig.plant.machines.items():
            driver = serving[mid]
            for k, point in enumerate(p for p in machine.points if p.writable):
                value = sample(point, k + 3)
                expected = await driver.write(mid, point, value)
                assert expected == value
                assert await driver.read_point(mid, point) == expected
                reading = await driver.read(mid, [driver.plan(mid, [point])])
                assert reading.values == {point.name: expected}

    with_drivers(rig.plant, body)


def test_a_silent_device_is_a_failed_reading_not_an_exception(rig: Rig) -> None:
    rig.stop()

    async def body(serving: dict[str, Driver]) -> None:
        for mid, machine in rig.plant.machines.items():
            driver = serving[mid]
            plans = [driver.plan(mid, machine.points[:2]), driver.plan(mid, machine.points[2:])]
            reading = await driver.read(mid, plans)
            assert not reading.answered and reading.errors and not reading.values
            assert reading.bad == {p.name for p in machine.points}
            assert all(isinstance(e, DeviceError) and e.machine == mid for e in reading.errors)
            point = next(p for p in machine.points if p.writable)
            with pytest.raises(DeviceError):
                await driver.read_point(mid, point)
            with pytest.raises(DeviceError):
                await driver.write(mid, point, sample(point, 1))

    with_drivers(rig.plant, body)
