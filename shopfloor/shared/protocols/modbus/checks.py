"""Modbus whole-file checks: overlapping registers in a machine's map, two machines on
one device, gateway settings that differ between the machines behind one gateway."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shopfloor.shared.protocols.base import Issue
from shopfloor.shared.protocols.modbus.enums import Transport
from shopfloor.shared.protocols.modbus.models import ModbusConnection, ModbusPoint


def machine_checks(base: str, machine: Any) -> Iterator[Issue]:
    """Points of one table must not overlap."""
    points: list[tuple[int, ModbusPoint]] = [
        (i, p) for i, p in enumerate(machine.points) if isinstance(p, ModbusPoint)
    ]
    indexed = sorted(points, key=lambda ip: (ip[1].table, ip[1].address))
    for (_, prev), (i, point) in zip(indexed, indexed[1:], strict=False):
        if point.table == prev.table and point.address < prev.end:
            yield (
                f"{base}.points[{i}].address",
                f"{point.table} {point.address} overlaps point {prev.name!r} "
                f"({prev.address}..{prev.end - 1})",
            )


def plant_checks(machines: Mapping[str, Any]) -> Iterator[Issue]:
    """One machine per device; one gateway setting per gateway."""
    connections = {mid: m.connection for mid, m in machines.items()
                   if isinstance(m.connection, ModbusConnection)}
    yield from _gateways(connections)
    seen: dict[tuple[str, int], str] = {}
    for mid, conn in connections.items():
        key = (conn.bus_key, conn.device_id)
        if key in seen:
            yield (
                f"machines.{mid}.connection",
                f"same device ({key[0]}, device_id {key[1]}) as machine {seen[key]!r}; "
                "one machine per device",
            )
        else:
            seen[key] = mid


def _gateways(connections: Mapping[str, ModbusConnection]) -> Iterator[Issue]:
    """Machines on one tcp host:port share one connection only if all of them say
    gateway: true, with one max_in_flight (it belongs to the connection)."""
    first: dict[str, tuple[str, bool, int]] = {}
    for mid, conn in connections.items():
        if conn.transport is not Transport.TCP:
            continue
        mine = (mid, conn.gateway, conn.max_in_flight)
        other = first.setdefault(conn.bus_key, mine)
        if other is mine or not (conn.gateway or other[1]):
            continue
        if conn.gateway != other[1]:
            yield (
                f"machines.{mid}.connection.gateway",
                f"{conn.host}:{conn.port} is a gateway for machine {other[0]!r} "
                f"(gateway: {str(other[1]).lower()}); set the same on every machine behind it",
            )
        elif conn.max_in_flight != other[2]:
            yield (
                f"machines.{mid}.connection.max_in_flight",
                f"{conn.max_in_flight} differs from {other[2]} of machine {other[0]!r} on the "
                f"same gateway {conn.host}:{conn.port}; it is one connection's setting",
            )
