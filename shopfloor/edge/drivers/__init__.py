"""Field protocols as drivers: the edge agent reads and writes devices only through them.

One subpackage per protocol, named as the plant file's `protocol:` (`modbus/`, ...),
exporting `FACTORY` (`base.DriverFactory`): given the agent's machines of that protocol,
it returns the `Driver`s serving them (one per connection: a Modbus TCP device, a
gateway, a serial line; an OPC UA session...). The agent (`edge/agent.py`) finds them by
name (`build_drivers`); nothing outside a driver's folder imports it.

A driver (`base.Driver`) is used in one of two ways, its `pushes` says which:

- **polled** (`pushes = False`): at start the agent asks `plan(machine_id, points)` once
  per poll interval group of each machine (opaque plans: Modbus read blocks); each
  scheduled poll (`edge/poller.py`: schedule, overload shedding) calls
  `start_read(machine_id, plans_due, done)` and the driver calls `done(reading)` later
  (Modbus TCP from its connection's callbacks; others `finish_later(self.read(...))`).
  `read` is the same, awaited (history, tests).
- **pushing** (`pushes = True`): the agent runs `run(sink)` as a supervised task; the
  driver calls `sink(machine_id, reading)` for every sample it receives (OPC UA
  data-change notifications, at the subscription's publishing interval). No poller runs
  for its machines; the overload governor sheds polls only.

Either way a `Reading` (values, bad points, errors, answered, source timestamp) goes to
the machine's `MachineStream` (`edge/stream.py`): deadband, sequence number, telemetry
into the outbox, online/offline tracking, the retained state. Commands
(`edge/commands.py`, `edge/dispatch.py`) check a write with `shared.control_rules` (the
same rules as the API), then `write(machine_id, point, value)` -> the value expected
back, `read_point(machine_id, point)` -> the read-back, compared: `done` means the
device holds it. A `DeviceError` becomes `failed`, a `DeviceRefusedWrite` `rejected`.

A third protocol: `shopfloor/shared/protocols/<name>/` (its connection and point models,
its whole-file checks), `shopfloor/edge/drivers/<name>/` (its driver and `FACTORY`), its
tests (`tests/edge/drivers/<name>/`) and docs; nothing else (docs/architecture.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from shopfloor.edge.drivers.base import Driver, DriverFactory, Reading, Sink
from shopfloor.edge.errors import EdgeError
from shopfloor.shared.plant import Agent, Machine, Plant


def known_protocols() -> list[str]:
    """The protocols with a driver (the subpackages of this package; none imported)."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if info.ispkg)


def factory_of(protocol: str) -> DriverFactory | None:
    """The driver factory of one protocol, imported on first use (the OPC UA driver
    brings asyncua and cryptography, ~25 MB, into an agent that may poll only Modbus)."""
    if protocol not in known_protocols():
        return None
    factory: DriverFactory = importlib.import_module(f"{__name__}.{protocol}").FACTORY
    return factory


def factories() -> dict[str, DriverFactory]:
    """Protocol name -> its driver factory (every driver imported)."""
    return {name: factory for name in known_protocols() if (factory := factory_of(name))}


def history_drivers(source: Any, plant: Plant, agent: Agent) -> list[Driver]:
    """Drivers reading the agent's machines from a simulated plant's past (`source`:
    sim.history.History), each protocol's from its package's `history` module."""
    protocols = sorted({plant.machines[m].connection.protocol for m in agent.machines})
    drivers: list[Driver] = []
    for protocol in protocols:
        module = importlib.import_module(f"{__name__}.{protocol}.history")
        drivers.extend(module.history_drivers(source, plant, agent))
    return drivers


def build_drivers(machines: Mapping[str, Machine], agent: Agent) -> list[Driver]:
    """The drivers serving these machines, each protocol's from its factory."""
    by_protocol: dict[str, dict[str, Machine]] = {}
    for mid, machine in machines.items():
        by_protocol.setdefault(machine.connection.protocol, {})[mid] = machine
    drivers: list[Driver] = []
    for protocol, group in by_protocol.items():
        factory = factory_of(protocol)
        if factory is None:
            raise EdgeError(f"no edge driver for protocol {protocol!r} "
                            f"(machines {sorted(group)}; drivers: {known_protocols()})")
        drivers.extend(factory(group, agent))
    return drivers


__all__ = ["Driver", "DriverFactory", "Reading", "Sink", "build_drivers", "factories",
           "history_drivers"]
