"""Field protocols' plant-file models, one subpackage (or module) per protocol.

Each exports `MODELS` (`base.ProtocolModels`): its connection model, its point model
(the address part of a point: a Modbus table and address, an OPC UA NodeId, ...) and its
whole-file checks. They are found here by name (every submodule but `base`), so a new
protocol is a new folder beside `modbus/` and nothing else in `shared/`.

The plant file's `machines.X.connection` and `machines.X.points[i]` are unions of the
protocols' models keyed by `protocol:`; `modbus` when it is left out, so every plant
file written before there were protocols stays valid. A point takes its machine's
connection protocol (`shopfloor.shared.plant.Machine`).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from shopfloor.shared.protocols.base import Connection, Point, ProtocolModels

DEFAULT = "modbus"
"""The protocol of a connection or point that names none."""


def _discover() -> dict[str, ProtocolModels]:
    found: dict[str, ProtocolModels] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name == "base":
            continue
        models = importlib.import_module(f"{__name__}.{info.name}").MODELS
        found[models.name] = models
    return found


PROTOCOLS: dict[str, ProtocolModels] = _discover()
"""Protocol name -> its models, in name order."""


def protocol_of(value: Any) -> str:
    """The `protocol:` of a connection or point (raw data or a model); DEFAULT if none."""
    if isinstance(value, dict):
        named = value.get("protocol", DEFAULT)
        return named if isinstance(named, str) else repr(named)
    return getattr(value, "protocol", DEFAULT)  # type: ignore[no-any-return]


def _union(models: list[type[Any]]) -> Any:
    tagged = tuple(Annotated[m, Tag(m.model_fields["protocol"].default)] for m in models)
    return Annotated[Union[tagged], Discriminator(protocol_of)]  # noqa: UP007 - built at run time


def connection_union() -> Any:
    """`Annotated[ModbusConnection | ..., Discriminator]`: a connection of any protocol."""
    return _union([p.connection for p in PROTOCOLS.values()])


def point_union() -> Any:
    """A point of any protocol, keyed by `protocol:` like the connection."""
    return _union([p.point for p in PROTOCOLS.values()])


__all__ = ["DEFAULT", "PROTOCOLS", "Connection", "Point", "ProtocolModels", "connection_union",
           "point_union", "protocol_of"]
