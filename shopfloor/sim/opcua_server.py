"""asyncua glue: one OPC UA server per (host, port) of the plant's OPC UA machines, each
point a variable node with the NodeId (or at the browse path) the plant file names, of
the built-in type its `type` says. The simulator's tick copies the machines' node images
into the address space (`flush`, source timestamp = now); a client's write goes through
the device (`SimDevice.write_node`), refused with BadOutOfRange (value outside min/max,
unknown product) or BadNotWritable (read-only point). Security policy None, anonymous:
the simulator stands for a machine on a bench, not a hardened server.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from asyncua import Node, Server, ua
from asyncua.server.address_space import NodeData

from shopfloor.shared.enums import DataType
from shopfloor.shared.plant import Point
from shopfloor.shared.protocols.base import PointValue as Value
from shopfloor.shared.protocols.opcua import VARIANT_OF, OpcUaPoint, browse_steps
from shopfloor.sim.device import SimDevice
from shopfloor.sim.errors import PortInUse, Refused
from shopfloor.sim.registers import ILLEGAL_ADDRESS

log = logging.getLogger(__name__)

NodeWriteHook = Callable[[SimDevice, Point, Value], None]
"""Called for a client's write of a raw value to a device's point; raises Refused."""

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def variant_type(point: Point) -> ua.VariantType:
    return ua.VariantType[VARIANT_OF[point.type.value]]


def to_variant_value(point: Point, raw: Value) -> Any:
    """A raw image value as the node holds it (a DateTime from its ISO text)."""
    if point.type is DataType.DATETIME:
        try:
            return dt.datetime.fromisoformat(str(raw))
        except ValueError:
            return EPOCH
    return raw


def from_variant_value(point: Point, value: Any) -> Value:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value  # type: ignore[no-any-return]


class OpcuaPlantServer:
    """The OPC UA machines of one endpoint."""

    def __init__(self, devices: list[SimDevice], host: str, port: int,
                 on_write: NodeWriteHook) -> None:
        self.devices = devices
        self.host, self.port = host, port
        self.endpoint = f"opc.tcp://{host}:{port}/"
        self._on_write = on_write
        self._server: Server | None = None
        self._nodes: dict[tuple[str, str], ua.NodeId] = {}  # (machine, point) -> node
        self._by_node: dict[ua.NodeId, tuple[SimDevice, Point]] = {}
        self._internal: ua.DataValue | None = None

    async def start(self) -> None:
        """Build the address space and listen. Raises PortInUse."""
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("shopfloor simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self._server = server
        folders: dict[str, Node] = {}
        for device in self.devices:
            for point in device.machine.points:
                assert isinstance(point, OpcUaPoint)
                node = await self._add(server, folders, device, point)
                self._nodes[(device.machine_id, point.name)] = node.nodeid
                self._by_node[node.nodeid] = (device, point)
                server.set_attribute_value_setter(node.nodeid, self._setter)
        try:
            await server.start()
        except OSError as exc:
            raise PortInUse(self.host, self.port, str(exc)) from exc
        await self.flush()

    async def _add(self, server: Server, folders: dict[str, Node], device: SimDevice,
                   point: OpcUaPoint) -> Node:
        assert device.nodes is not None
        raw = device.nodes.raw[point.name]
        value = ua.Variant(to_variant_value(point, raw), variant_type(point))
        if point.browse_path is not None:
            *parents, leaf = browse_steps(point.browse_path)
            parent = await self._folder(server, folders, parents)
            ns, name = _qualified(leaf)
            await _namespace(server, ns)
            node = await parent.add_variable(ns, name, value, variant_type(point))
        else:
            assert point.node_id is not None
            nodeid = ua.NodeId.from_string(point.node_id)
            await _namespace(server, nodeid.NamespaceIndex)
            parent = await self._folder(server, folders, [f"{nodeid.NamespaceIndex}:"
                                                          f"{device.machine_id}"])
            node = await parent.add_variable(nodeid, f"{nodeid.NamespaceIndex}:{point.name}",
                                             value, variant_type(point))
        if point.writable:
            await node.set_writable()
        return node

    async def _folder(self, server: Server, folders: dict[str, Node], steps: list[str]) -> Node:
        parent = server.nodes.objects
        for i in range(len(steps)):
            key = "/".join(steps[: i + 1])
            if key not in folders:
                ns, name = _qualified(steps[i])
                await _namespace(server, ns)
                folders[key] = await parent.add_object(ns, name)
            parent = folders[key]
        return parent

    def _setter(self, node: NodeData, attr: ua.AttributeIds, value: ua.DataValue) -> None:
        """Every write of a node's value: the simulator's own (`flush`) is stored as it
        is; a client's goes through the device, which may refuse it."""
        attribute = node.attributes[attr]
        if value is not self._internal:
            device, point = self._by_node[node.nodeid]
            raw = from_variant_value(point, value.Value.Value if value.Value else None)
            try:
                self._on_write(device, point, raw)
            except Refused as exc:
                log.info("%s: write of %s refused: %s", device.machine_id, point.name, exc)
                code = (ua.StatusCodes.BadNotWritable if exc.code == ILLEGAL_ADDRESS
                        else ua.StatusCodes.BadOutOfRange)
                raise ua.UaStatusCodeError(code) from exc
            now = dt.datetime.now(dt.UTC)
            value = ua.DataValue(value.Value, SourceTimestamp=now,  # type: ignore[arg-type]
                                  ServerTimestamp=now)  # type: ignore[arg-type]
        attribute.value = value
        attribute.value_callback = None

    async def flush(self) -> None:
        """Copy every changed image value into its node. The source timestamp is taken
        per machine, as its values go in: a real machine's server stamps a value when it
        has it, not when a simulator serving many machines began its round."""
        assert self._server is not None
        for device in self.devices:
            image = device.nodes
            if image is None or not image.dirty:
                continue
            now = dt.datetime.now(dt.UTC)
            names, image.dirty = image.dirty, set()
            for name in names:
                point = image.points[name]
                variant = ua.Variant(to_variant_value(point, image.raw[name]), variant_type(point))
                self._internal = ua.DataValue(variant, SourceTimestamp=now,  # type: ignore[arg-type]
                                  ServerTimestamp=now)  # type: ignore[arg-type]
                await self._server.write_attribute_value(
                    self._nodes[(device.machine_id, name)], self._internal
                )
        self._internal = None

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None


def _qualified(step: str) -> tuple[int, str]:
    ns, _, name = step.partition(":")
    return int(ns), name


async def _namespace(server: Server, index: int) -> None:
    """Register namespaces until `index` exists (the simulator's own URIs)."""
    while len(await server.get_namespace_array()) <= index:
        count = len(await server.get_namespace_array())
        await server.register_namespace(f"urn:shopfloor:sim:ns{count}")
