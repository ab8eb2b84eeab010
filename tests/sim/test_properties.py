"""Properties of the pure model: same seed -> same run however time is sliced; counters
wrap at their point's width; the state point only ever shows codes of the plant's map."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shopfloor.shared.enums import MachineState
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import StateCode, StateMap
from shopfloor.sim.codes import StateCodes
from shopfloor.sim.line import PlantModel
from shopfloor.sim.params import Behaviour
from tests.sim.conftest import example_on_port, example_on_port_data

T0 = 1_700_000_000.0
BUSY = Behaviour(
    jam_mtbf_s=60.0,
    breakdown_mtbf_s=300.0,
    repair_s=(20.0, 80.0),
    auto_ack_s=(5.0, 30.0),
    setup_s=(10.0, 40.0),
    reject_rate_min=0.05,
    reject_rate_max=0.2,
)
"""Many events in a short run, so that every phase is visited."""


def snapshot(model: PlantModel) -> list[tuple[Any, ...]]:
    return [
        (mid, m.phase, m.total, m.reject, round(m.due, 6), m.state_code(), m.alarm_code())
        for mid, m in sorted(model.machines.items())
    ]


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    steps=st.lists(st.floats(0.01, 300.0), min_size=1, max_size=40),
)
def test_same_seed_same_run_however_time_is_sliced(seed: int, steps: list[float]) -> None:
    plant = example_on_port(5020)
    sliced = PlantModel(plant, seed, T0, BUSY)
    t = T0
    for step in steps:
        t += step
        sliced.advance(t)
    at_once = PlantModel(plant, seed, T0, BUSY)
    at_once.advance(t)
    assert snapshot(sliced) == snapshot(at_once)


def test_different_seeds_differ() -> None:
    plant = example_on_port(5020)
    runs = [PlantModel(plant, seed, T0, BUSY) for seed in (1, 2)]
    for run in runs:
        run.advance(T0 + 3600)
    assert snapshot(runs[0]) != snapshot(runs[1])


@settings(max_examples=20, deadline=None)
@given(before_wrap=st.integers(0, 30), seconds=st.floats(1.0, 400.0))
def test_total_counter_wraps_at_its_width(before_wrap: int, seconds: float) -> None:
    data = example_on_port_data(5020)
    data["machines"]["press1"]["points"][1]["type"] = "uint16"  # total_count
    model = PlantModel(parse_plant(data), 7, T0, replace(BUSY, jam_mtbf_s=1e12), ["press1"])
    press = model.machines["press1"]
    press.total = 65535 - before_wrap
    seen = [press.total]
    t = T0
    while t < T0 + seconds:
        t += 1.0
        model.advance(t)
        seen.append(press.total)
    assert all(0 <= v <= 65535 for v in seen)
    steps = [(b - a) % 65536 for a, b in zip(seen, seen[1:], strict=False)]
    assert all(0 <= s <= 2 for s in steps)  # never jumps, never goes backwards
    if sum(steps) > before_wrap:
        assert press.total < 1000  # went past 65535 and started again at 0


controls = st.lists(
    st.tuples(
        st.floats(0.1, 200.0),
        st.sampled_from(["run", "maintenance", "product", "speed", "ack"]),
        st.integers(0, 200),
    ),
    max_size=25,
)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), actions=controls, sparse=st.booleans())
def test_state_codes_always_in_the_plant_map(
    seed: int, actions: list[tuple[float, str, int]], sparse: bool
) -> None:
    data = example_on_port_data(5020)
    if sparse:  # a plant that names only a few states: the model must still fit them
        for machine in data["machines"].values():
            machine["state"]["codes"] = {7: {"state": "running"}, 9: {"state": "stopped"}}
        del data["downtime"]  # its reason tree maps PLC reasons these codes no longer give
    model = PlantModel(parse_plant(data), seed, T0, BUSY)
    allowed = {mid: set(data["machines"][mid]["state"]["codes"]) for mid in data["machines"]}
    t = T0
    for i, (dt, action, value) in enumerate(actions):
        t += dt
        model.advance(t)
        mid = sorted(model.machines)[i % 4]
        _act(model.machines[mid], action, value, t)
        model.changed(mid, t)
        for other, machine in model.machines.items():
            assert machine.state_code() in allowed[other]
            assert machine.alarm_code() == 0 or machine.alarm_code() in allowed[other]


def _act(machine: Any, action: str, value: int, t: float) -> None:
    if action == "run":
        machine.set_run(t, value % 2 == 0)
    elif action == "maintenance":
        machine.set_maintenance(t, value % 3 == 0)
    elif action == "product":
        machine.set_product(t, value % 3 + 1)
    elif action == "speed":
        machine.set_speed(t, float(max(10, min(120, value))))
    else:
        machine.acknowledge(t)


states = st.sampled_from(list(MachineState))
reasons = st.sampled_from([None, "jam", "operator_stop", "starved", "blocked", "motor_fault", "x"])


@given(
    codes=st.dictionaries(st.integers(0, 99), st.tuples(states, reasons), max_size=8),
    state=states,
    reason=reasons,
)
def test_code_lookup_never_leaves_the_map(
    codes: dict[int, tuple[MachineState, str | None]], state: MachineState, reason: str | None
) -> None:
    state_map = StateMap(
        point="state", codes={c: StateCode(state=s, reason=r) for c, (s, r) in codes.items()}
    )
    lookup = StateCodes.from_map(state_map)
    code = lookup.code_for(state, reason)
    assert code in codes if codes else code == 0
    if (state, reason) in codes.values():
        assert codes[code] == (state, reason)
