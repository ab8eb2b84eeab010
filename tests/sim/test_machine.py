"""The pure machine model: production rate, reactions to controls, stops and faults.
Driven directly on virtual time (no sockets, no clock)."""

from __future__ import annotations

from dataclasses import replace

from shopfloor.shared.enums import MachineState
from shopfloor.shared.plant import Plant
from shopfloor.sim.line import PlantModel
from shopfloor.sim.machine import MachineModel, Phase
from shopfloor.sim.params import Behaviour
from shopfloor.sim.simulator import auto_tick_s
from tests.sim.conftest import CALM, example_on_port

T0 = 1_700_000_000.0


def lone(
    machine: str = "press1", behaviour: Behaviour = CALM, seed: int = 3
) -> tuple[PlantModel, MachineModel]:
    """One machine of the example plant on its own (unlimited supply and sink)."""
    model = PlantModel(example_on_port(5020), seed, T0, behaviour, [machine])
    return model, model.machines[machine]


def produced(model: PlantModel, machine: MachineModel, seconds: float, start: float) -> int:
    before = machine.total
    model.advance(start + seconds)
    return (machine.total - before) % (1 << machine.spec.total_bits)


def test_produces_near_ideal_cycle_time() -> None:
    model, press = lone()
    parts = produced(model, press, 1000.0, T0)
    # ideal 1.4 s, actual cycle 1.4 .. 1.512 s; one part may be in flight at either end
    assert 1000 / 1.512 - 2 <= parts <= 1000 / 1.4 + 1
    assert press.state() == (MachineState.RUNNING, None)
    assert press.state_code() == 1


def test_speed_setpoint_scales_cycle_time() -> None:
    model, press = lone()
    model.advance(T0 + 10)
    press.set_speed(T0 + 10, 50.0)
    model.changed("press1", T0 + 10)
    parts = produced(model, press, 1000.0, T0 + 10)
    assert 1000 / 3.024 - 2 <= parts <= 1000 / 2.8 + 1  # ideal 1.4 s at 50 %


def test_rejects_counted_at_the_machine_rate() -> None:
    behaviour = replace(CALM, reject_rate_min=0.1, reject_rate_max=0.1)
    model, press = lone(behaviour=behaviour)
    total0, reject0 = press.total, press.reject
    model.advance(T0 + 4000)
    total, rejects = press.total - total0, press.reject - reject0
    assert total > 1500
    assert 0.06 < rejects / total < 0.14


def test_run_off_stops_with_operator_stop_and_on_resumes() -> None:
    model, press = lone()
    model.advance(T0 + 50)
    press.set_run(T0 + 50, False)
    model.changed("press1", T0 + 50)
    assert press.state() == (MachineState.STOPPED, "operator_stop")
    assert press.state_code() == 0
    assert produced(model, press, 500, T0 + 50) == 0
    press.set_run(T0 + 550, True)
    model.changed("press1", T0 + 550)
    assert press.state_code() == 1
    assert produced(model, press, 100, T0 + 550) >= 40


def test_maintenance_is_a_planned_stop_until_switched_off() -> None:
    model, press = lone()
    press.set_maintenance(T0 + 5, True)
    model.changed("press1", T0 + 5)
    assert press.state() == (MachineState.PLANNED_STOP, "maintenance")
    assert press.state_code() == 40
    assert produced(model, press, 300, T0 + 5) == 0
    press.set_maintenance(T0 + 305, False)
    model.changed("press1", T0 + 305)
    assert press.state_code() == 1


def test_product_change_sets_up_then_runs_the_new_cycle_time() -> None:
    behaviour = replace(CALM, setup_s=(100.0, 100.0))
    model, press = lone(behaviour=behaviour)
    model.advance(T0 + 20)
    press.set_product(T0 + 20, 2)  # product B: ideal 1.75 s
    model.changed("press1", T0 + 20)
    assert press.state() == (MachineState.SETUP, "changeover")
    assert press.state_code() == 30
    assert produced(model, press, 99, T0 + 20) == 0
    model.advance(T0 + 121)
    assert press.state_code() == 1
    parts = produced(model, press, 1000, T0 + 121)
    assert 1000 / 1.89 - 2 <= parts <= 1000 / 1.75 + 1


def _until_phase(model: PlantModel, machine: MachineModel, phase: Phase, start: float) -> float:
    t = start
    while machine.phase is not phase:
        t += 1.0
        model.advance(t)
        assert t < start + 100_000, f"never reached {phase}"
    return t


def test_breakdown_needs_repair_then_acknowledge() -> None:
    behaviour = replace(CALM, breakdown_mtbf_s=30.0, repair_s=(200.0, 200.0), auto_ack_s=(1e6, 1e6))
    model, press = lone(behaviour=behaviour)
    t = _until_phase(model, press, Phase.REPAIR, T0)
    code = press.state_code()
    assert code in (20, 21, 22)
    assert press.alarm_code() == code
    assert press.acknowledge(t) is False  # still under repair: the ack does nothing
    assert press.phase is Phase.REPAIR
    t = _until_phase(model, press, Phase.AWAIT_ACK, t)
    assert press.state_code() == code  # repaired, still stopped until acknowledged
    assert press.acknowledge(t + 1) is True
    model.changed("press1", t + 1)
    assert press.alarm_code() == 0
    assert press.phase is Phase.CYCLE


def test_unacknowledged_alarm_is_cleared_by_the_simulated_operator() -> None:
    behaviour = replace(CALM, breakdown_mtbf_s=30.0, repair_s=(50.0, 50.0), auto_ack_s=(20.0, 20.0))
    model, press = lone(behaviour=behaviour)
    t = _until_phase(model, press, Phase.AWAIT_ACK, T0)
    model.advance(t + 18)
    assert press.phase is Phase.AWAIT_ACK
    model.advance(t + 21)
    assert press.phase is Phase.CYCLE
    assert press.fault is None
    assert press.state_code() == 1


def test_minor_stops_are_short_jams() -> None:
    behaviour = replace(CALM, jam_mtbf_s=20.0, jam_duration_s=(5.0, 10.0))
    model, press = lone(behaviour=behaviour)
    jams = 0
    t = T0
    while t < T0 + 2000:
        t += 0.5
        model.advance(t)
        if press.phase is Phase.JAM:
            assert press.state() == (MachineState.STOPPED, "jam")
            assert press.state_code() == 10
            assert press.due - press.since_s <= 10.0
            jams += 1
    assert jams > 0
    assert press.phase in (Phase.CYCLE, Phase.JAM)


def test_stopping_the_first_station_starves_the_next() -> None:
    model = PlantModel(example_on_port(5020), 1, T0, CALM)
    press, weld = model.machines["press1"], model.machines["weld1"]
    press.set_run(T0, False)
    model.changed("press1", T0)
    model.advance(T0 + 2000)  # the buffer of 200 (half full at start) runs dry
    assert weld.state() == (MachineState.IDLE, "starved")
    assert weld.state_code() == 2
    press.set_run(T0 + 2000, True)
    model.changed("press1", T0 + 2000)
    model.advance(T0 + 2010)
    assert weld.state_code() == 1


def test_a_stopped_last_station_blocks_the_one_before() -> None:
    model = PlantModel(example_on_port(5020), 1, T0, CALM)
    paint, pack = model.machines["paint1"], model.machines["pack1"]
    pack.set_run(T0, False)
    model.changed("pack1", T0)
    model.advance(T0 + 3000)
    assert paint.state() == (MachineState.IDLE, "blocked")
    assert paint.state_code() == 3
    buffer = paint.downstream
    assert buffer is not None and buffer.count == buffer.capacity
    pack.set_run(T0 + 3000, True)
    model.changed("pack1", T0 + 3000)
    model.advance(T0 + 3010)
    assert paint.state_code() == 1


def test_parts_are_conserved_along_the_line() -> None:
    """Every good part of a station is in the next buffer, in the next station, or
    counted by it (no part appears or vanishes between stations)."""
    plant: Plant = example_on_port(5020)
    model = PlantModel(plant, 5, T0, replace(CALM, reject_rate_min=0.02, reject_rate_max=0.05))
    weld, paint = model.machines["weld1"], model.machines["paint1"]
    buffer = weld.downstream
    assert buffer is not None

    def unaccounted() -> int:
        good_out = weld.total - weld.reject
        return good_out - weld.finished_part - buffer.count - paint.holding_part - paint.total

    start = unaccounted()
    for step in range(1, 51):
        model.advance(T0 + 100 * step)
        assert unaccounted() == start


def test_alarm_acknowledged_while_stopped_does_not_restart_the_machine() -> None:
    behaviour = replace(CALM, breakdown_mtbf_s=30.0, repair_s=(100.0, 100.0), auto_ack_s=(1e6, 1e6))
    model, press = lone(behaviour=behaviour)
    t = _until_phase(model, press, Phase.REPAIR, T0)
    press.set_run(t, False)
    model.changed("press1", t)
    assert press.acknowledge(t + 10) is False  # still under repair
    assert press.acknowledge(t + 101) is True  # repaired meanwhile: the alarm clears
    assert press.alarm_code() == 0
    assert press.state_code() == 0  # but the machine stays stopped by the operator
    press.set_run(t + 200, True)
    model.changed("press1", t + 200)
    assert press.state_code() == 1


def test_tick_is_finer_at_high_speed() -> None:
    assert auto_tick_s(1.0) == 0.1
    assert auto_tick_s(10.0) == 0.1
    assert auto_tick_s(25.0) == 0.04
    assert auto_tick_s(1000.0) == 0.02
