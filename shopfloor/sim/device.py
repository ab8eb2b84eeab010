"""One simulated device: a machine model, its image (Modbus registers, or OPC UA node
values) and the outputs that copy one into the other; client writes go the other way,
into the model's controls."""

from __future__ import annotations

from shopfloor.shared.plant import Machine, Point
from shopfloor.shared.protocols.base import PointValue as Value
from shopfloor.shared.protocols.modbus.enums import Table
from shopfloor.shared.protocols.opcua import OpcUaConnection
from shopfloor.sim.errors import Refused
from shopfloor.sim.faults import NORMAL, Fault
from shopfloor.sim.machine import MachineModel
from shopfloor.sim.opcua_image import NodeImage
from shopfloor.sim.outputs import Output, Refresh, outputs_for
from shopfloor.sim.registers import ILLEGAL_VALUE, DeviceRegisters


class SimDevice:
    """Machine `machine_id` as a Modbus unit (`registers` is what clients read) or as
    OPC UA nodes (`nodes`)."""

    def __init__(self, machine_id: str, machine: Machine, model: MachineModel, now_s: float):
        self.machine_id = machine_id
        self.machine = machine
        self.model = model
        self.fault: Fault = NORMAL
        self.nodes: NodeImage | None = None
        self.registers = DeviceRegisters(machine)  # empty for an OPC UA machine
        if isinstance(machine.connection, OpcUaConnection):
            self.nodes = NodeImage(machine)
        outputs = outputs_for(machine)
        self._event = [o for o in outputs if o.refresh is Refresh.EVENT]
        self._analog = [o for o in outputs if o.refresh is Refresh.ANALOG]
        self._shown: dict[str, Value] = {}
        self._seen_changes = model.changes
        self._roles = {
            name: role for role, name in machine.control.model_dump().items() if name is not None
        }
        for output in outputs:
            self._show(output, now_s)

    def refresh(self, now_s: float, analog: bool) -> None:
        """Copy the model into the registers: event outputs if the model changed since
        the last refresh, analog outputs when `analog`."""
        if self.model.changes != self._seen_changes:
            self._seen_changes = self.model.changes
            for output in self._event:
                self._show(output, now_s)
        if analog:
            for output in self._analog:
                self._show(output, now_s)

    def _show(self, output: Output, now_s: float) -> None:
        value = output.source(self.model, now_s)
        name = output.point.name
        if self._shown.get(name) != value or name not in self._shown:
            self._shown[name] = value
            if self.nodes is not None:
                self.nodes.set(output.point, value)
            else:
                self.registers.set(output.point, value)

    def write(
        self, table: Table, address: int, values: list[int] | list[bool], now_s: float
    ) -> None:
        """A client's write at virtual time `now_s` (the model must be advanced to it).
        Raises Refused, changing nothing, when the device refuses it."""
        changes = self.registers.prepare(table, address, values)
        for point, value in changes:
            if self._roles.get(point.name) == "product":
                self._check_product(value)
        self.registers.commit(table, address, values)
        for point, value in changes:
            self._shown.pop(point.name, None)
            self._apply(self._roles.get(point.name), value, now_s)

    def write_node(self, point: Point, raw: Value, now_s: float) -> None:
        """An OPC UA client's write of `raw` to the point's node at virtual time `now_s`
        (the model advanced to it). Raises Refused, changing nothing."""
        assert self.nodes is not None
        value = self.nodes.check_write(point, raw)
        if self._roles.get(point.name) == "product":
            self._check_product(value)
        self.nodes.commit(point, raw)
        self._shown.pop(point.name, None)
        self._apply(self._roles.get(point.name), value, now_s)

    def _check_product(self, value: Value) -> None:
        known = self.model.spec.cycle_times_s
        if known and value not in known:
            raise Refused(ILLEGAL_VALUE, f"unknown product code {value!r} (known: {sorted(known)})")

    def _apply(self, role: str | None, value: Value, now_s: float) -> None:
        model = self.model
        if role == "run":
            model.set_run(now_s, bool(value))
        elif role == "maintenance":
            model.set_maintenance(now_s, bool(value))
        elif role == "speed" and isinstance(value, int | float):
            model.set_speed(now_s, float(value))
        elif role == "product" and isinstance(value, int | float):
            model.set_product(now_s, int(value))
        elif role == "work_order":
            model.set_work_order(now_s, str(value))
        elif role == "alarm_ack" and value:
            model.acknowledge(now_s)
