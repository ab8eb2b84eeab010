"""A protocol's test rig for the driver conformance tests (test_conformance.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shopfloor.shared.contract import PointValue
from shopfloor.shared.plant import Plant, Point


@dataclass
class Rig:
    """A plant whose machines a real server of the protocol serves."""

    plant: Plant
    serve: Callable[[str, Point, PointValue], None]
    """Put a value into the server (machine id, point, engineering value)."""
    stop: Callable[[], None]
