"""What the points of a simulated machine show: roles from the model, plausible synthetic
values for the rest (power tied to running, energy accumulating, temperature lagging)."""

from __future__ import annotations

from shopfloor.shared.protocols.modbus import ModbusPoint as Point
from shopfloor.shared.protocols.modbus.enums import Table
from shopfloor.sim.device import SimDevice
from shopfloor.sim.line import PlantModel
from shopfloor.sim.outputs import Refresh, outputs_for
from tests.sim.conftest import CALM, example_on_port

T0 = 1_700_000_000.0
PLANT = example_on_port(5020)


def point(name: str) -> Point:
    found = PLANT.machines["press1"].point(name)
    assert found is not None
    return found


def test_every_point_has_a_source_of_the_right_kind() -> None:
    kinds = {o.point.name: o.refresh for o in outputs_for(PLANT.machines["press1"])}
    assert set(kinds) == {p.name for p in PLANT.machines["press1"].points}
    assert kinds["state"] is kinds["total_count"] is kinds["speed_pct"] is Refresh.EVENT
    assert kinds["temperature"] is kinds["power"] is kinds["energy"] is Refresh.ANALOG
    assert kinds["alarm_ack"] is Refresh.HELD


def test_power_follows_running_and_energy_accumulates() -> None:
    model = PlantModel(PLANT, 9, T0, CALM, ["press1"])
    press = model.machines["press1"]
    device = SimDevice("press1", PLANT.machines["press1"], press, T0)
    model.advance(T0 + 3600)
    device.refresh(T0 + 3600, analog=True)
    running_kw = device.registers.get(point("power"))
    energy_1h = device.registers.get(point("energy"))
    hot = device.registers.get(point("temperature"))
    press.set_run(T0 + 3600, False)
    model.changed("press1", T0 + 3600)
    model.advance(T0 + 7200)
    device.refresh(T0 + 7200, analog=True)
    stopped_kw = device.registers.get(point("power"))
    energy_2h = device.registers.get(point("energy"))
    cold = device.registers.get(point("temperature"))
    assert isinstance(running_kw, float) and isinstance(stopped_kw, float)
    assert isinstance(energy_1h, float) and isinstance(energy_2h, float)
    assert running_kw > 3 * stopped_kw > 0
    assert energy_2h - energy_1h > 0  # idle draw still counts
    assert energy_2h - energy_1h < running_kw  # an hour stopped costs less than running
    assert isinstance(hot, float) and isinstance(cold, float) and hot > cold
    assert device.registers.get(point("state")) == 0
    assert device.registers.read(Table.COIL, 0, 1) == [False]  # run shows the setpoint
