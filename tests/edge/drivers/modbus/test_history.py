"""Past polls into the outbox (edge.history.fill) over the simulator's past: the agent's
own pipeline stamps each poll with its instant, sequence numbers continue the stream's
(and the live agent continues them), each point group keeps its own interval, and the
values are what the simulated machine showed then."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from shopfloor.edge.agent import outbox_path_of
from shopfloor.edge.drivers.modbus.history import history_drivers
from shopfloor.edge.history import fill
from shopfloor.edge.store import Store
from shopfloor.shared.enums import QueueFullPolicy
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from shopfloor.sim.history import History
from tests.harness.plants import example_data

T0 = 1_700_000_000.0


def plant_in(tmp_path: Path) -> Plant:
    """The example plant, its agent polling only its Modbus machines (the OPC UA
    machine's history: tests/local/test_backfill.py)."""
    data = example_data()
    agent = data["agents"][0]
    agent["state_dir"] = str(tmp_path / "edge1")
    agent["machines"] = [m for m in agent["machines"]
                         if "protocol" not in data["machines"][m]["connection"]]
    return parse_plant(data)


def replay(plant: Plant, history: History, start_s: float, end_s: float,
           progress: Callable[[float], None] | None = None, step_factor: float = 1.0) -> int:
    """The simulator's past through the Modbus driver into the first agent's outbox."""
    agent = plant.agents[0]
    drivers = history_drivers(history, plant, agent)
    return asyncio.run(fill(plant, agent, history, drivers, start_s, end_s, progress,
                            step_factor))


def rows(plant: Plant) -> list[tuple[str, dict]]:
    agent = plant.agents[0]
    store = Store(outbox_path_of(agent), 10**7, QueueFullPolicy.DROP_OLDEST)
    try:
        return [(r.message.topic, json.loads(r.message.payload)) for r in store.fetch(0, 10**6)]
    finally:
        store.close()


def test_ten_minutes_of_history_through_the_poll_pipeline(tmp_path: Path) -> None:
    plant = plant_in(tmp_path)
    seen: list[float] = []
    polls = replay(plant, History(plant, 5, T0), T0, T0 + 600, seen.append)
    machines = len(plant.agents[0].machines)
    assert machines >= 4
    assert polls == machines * 601  # one poll a second per machine, both ends included
    assert seen[-1] == T0 + 600 and seen == sorted(seen)
    messages = rows(plant)
    press = [m for t, m in messages if t.endswith("/press1/telemetry")]
    assert [m["seq"] for m in press] == list(range(601))
    assert press[0]["ts"].startswith("2023-11-14T22:13:20")  # T0, not now
    assert press[-1]["ts"].startswith("2023-11-14T22:23:20")
    # energy has its own 5 s interval; the state point is in every poll
    assert sum("energy" in m["values"] for m in press) == 121
    assert all("state" in m["values"] for m in press)
    # the values are the simulated machine's at that instant
    check = History(plant, 5, T0)
    check.advance(T0 + 300)
    point = next(p for p in plant.machines["press1"].points if p.name == "total_count")
    assert press[300]["values"]["total_count"] == check.devices["press1"].registers.get(point)
    assert any(t.endswith("/press1/state") for t, _ in messages)  # retained state too


def test_a_second_fill_continues_the_sequence_numbers(tmp_path: Path) -> None:
    plant = plant_in(tmp_path)
    replay(plant, History(plant, 5, T0), T0, T0 + 9)
    replay(plant, History(plant, 5, T0 + 10), T0 + 10, T0 + 19)
    weld = [m["seq"] for t, m in rows(plant) if t.endswith("/weld1/telemetry")]
    assert weld == list(range(20))


def test_polls_stretched_by_a_factor_keep_each_groups_share(tmp_path: Path) -> None:
    plant = plant_in(tmp_path)
    polls = replay(plant, History(plant, 5, T0), T0, T0 + 600, step_factor=2.0)
    assert polls == len(plant.agents[0].machines) * 301  # every 2 s instead of every second
    press = [m for t, m in rows(plant) if t.endswith("/press1/telemetry")]
    assert [m["seq"] for m in press] == list(range(301))  # no gap in the stream
    assert press[1]["ts"].startswith("2023-11-14T22:13:22")
    # energy (5 s) is due every round(5 / 2) = 2 polls: every 4 s
    assert sum("energy" in m["values"] for m in press) == 151
    check = History(plant, 5, T0)
    check.advance(T0 + 600)
    point = next(p for p in plant.machines["press1"].points if p.name == "total_count")
    assert press[-1]["values"]["total_count"] == check.devices["press1"].registers.get(point)


def test_a_factor_below_one_is_refused(tmp_path: Path) -> None:
    plant = plant_in(tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        replay(plant, History(plant, 5, T0), T0, T0 + 9, step_factor=0.5)


def test_following_a_clock_polls_on_until_it_is_caught_up(tmp_path: Path) -> None:
    """The queueing takes a while: with `follow`, the history goes on to where the clock
    is when end_s is passed, and again, until it is caught up."""
    plant = plant_in(tmp_path)
    agent = plant.agents[0]
    history = History(plant, 5, T0)
    clock = iter([T0 + 20, T0 + 25, T0 + 25.5])
    polls = asyncio.run(fill(plant, agent, history, history_drivers(history, plant, agent),
                             T0, T0 + 10, follow=lambda: next(clock)))
    assert polls == len(agent.machines) * 26  # T0 .. T0 + 25, one poll a second
    press = [m for t, m in rows(plant) if t.endswith("/press1/telemetry")]
    assert [m["seq"] for m in press] == list(range(26))
    assert press[-1]["ts"].startswith("2023-11-14T22:13:45")
