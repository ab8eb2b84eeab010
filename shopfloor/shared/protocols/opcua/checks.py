"""OPC UA whole-file checks: two points of one machine naming the same node."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shopfloor.shared.protocols.base import Issue
from shopfloor.shared.protocols.opcua.models import OpcUaPoint


def machine_checks(base: str, machine: Any) -> Iterator[Issue]:
    """A node is one point of its machine (two would publish one value twice)."""
    seen: dict[str, str] = {}
    for i, point in enumerate(machine.points):
        if not isinstance(point, OpcUaPoint):
            continue
        other = seen.setdefault(point.node, point.name)
        if other != point.name:
            field = "node_id" if point.node_id else "browse_path"
            yield f"{base}.points[{i}].{field}", f"{point.node} is point {other!r} too"


def plant_checks(machines: Mapping[str, Any]) -> Iterator[Issue]:
    """Nothing between machines: many machines may share one server."""
    return iter(())
