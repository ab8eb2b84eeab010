"""The simulated plant's past (sim.history.History): the live simulator started from the
same origin continues it exactly, and the counted buffer level B_i (shared OEE.md) never
leaves [0, capacity], so a healthy simulated line shows no WIP drift."""

from __future__ import annotations

import pytest

from shopfloor.sim.errors import SimError
from shopfloor.sim.history import History
from shopfloor.sim.simulator import Simulator
from tests.sim.conftest import example_on_port

T0 = 1_700_000_000.0
PLANT = example_on_port(5020)


def snapshot(devices: dict, names: tuple[str, ...] = ("state", "total_count", "reject_count")):
    """What clients see of each device: its registers, or an OPC UA machine's nodes."""
    return {mid: {p.name: (d.registers if d.nodes is None else d.nodes).get(p)
                  for p in d.machine.points if p.name in names}
            for mid, d in devices.items()}


def test_the_simulator_started_from_an_origin_continues_the_history() -> None:
    history = History(PLANT, 7, T0)
    for step in range(1, 3 * 3600 + 1, 7):  # walked in uneven steps, refreshed each time
        history.advance(T0 + step)
    history.advance(T0 + 3 * 3600)
    live = Simulator(PLANT, 7, start_s=T0 + 3 * 3600, origin_s=T0)
    for device in live.devices.values():
        device.refresh(T0 + 3 * 3600, analog=False)
    assert snapshot(live.devices) == snapshot(history.devices)
    totals = snapshot(history.devices)
    fresh = snapshot(Simulator(PLANT, 7, start_s=T0 + 3 * 3600).devices)
    assert fresh != totals  # without the origin the counters would jump


def test_counted_buffer_levels_stay_within_capacity() -> None:
    history = History(PLANT, 3, T0)
    capacity = PLANT.lines[0].buffer_capacity
    seen_full = False
    for step in range(0, 6 * 3600, 5):
        history.advance(T0 + step)
        for buffer, level in history.stock()["line1"].items():
            assert 0 <= level <= capacity[buffer], (step, buffer, level)
            seen_full = seen_full or level == capacity[buffer]
    assert seen_full  # press1 is faster than weld1: its buffer does fill up


def test_history_only_moves_forward() -> None:
    history = History(PLANT, 0, T0)
    history.advance(T0 + 10)
    with pytest.raises(SimError, match="cannot go back"):
        history.advance(T0 + 5)
