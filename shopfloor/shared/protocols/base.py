"""What every field protocol's plant-file models build on: the common part of a
machine's connection and of a point, the base model, and the `ProtocolModels` record a
protocol module exports (see `shopfloor.shared.protocols`).

A point's protocol-neutral half lives here: name, value type, scaling, unit, polling,
deadband and the write limits. Where the value sits on the device (a Modbus table and
address, an OPC UA NodeId) is the protocol's half, in its own module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopfloor.shared.enums import DataType
from shopfloor.shared.errors import CodecError

PointValue = bool | int | float | str
"""A point's engineering value, whatever the protocol (text for string and datetime)."""

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""An id usable in MQTT topics and InfluxDB tags: letters, digits, _ . - (no / + #)."""

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveSeconds = Annotated[float, Field(gt=0)]

Issue = tuple[str, str]
"""(path in the plant file, message)."""


class Model(BaseModel):
    """Base: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Connection(Model):
    """The common part of a machine's connection; `protocol` selects the subclass."""

    protocol: str
    timeout_s: PositiveSeconds = 1.0
    """Longest wait for one request's answer."""


class Point(Model):
    """One signal of a machine, protocol-neutral half. Engineering value = raw * scale +
    offset. `min`/`max` bound writes, in engineering units."""

    protocol: str
    name: Ident
    type: DataType = DataType.UINT16
    length: Annotated[int, Field(ge=1, le=250)] | None = None
    """Characters of a string point."""
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    poll_interval_s: PositiveSeconds | None = None
    deadband: Annotated[float, Field(ge=0)] = 0.0
    writable: bool = False
    min: float | None = None
    max: float | None = None
    free_setpoint: bool = False
    """A point a control action writes (control.run, ...) may also be written through
    the setpoint route, with that action's permission and interlock."""

    @model_validator(mode="after")
    def _limits(self) -> Point:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    @property
    def keeps_integer(self) -> bool:
        """An integer point with scale 1 and offset 0 stays an integer (decoded, stored,
        written); any other numeric point is a float. The one statement of that rule."""
        return self.type.is_integer and self.scale == 1 and self.offset == 0

    def raw_of(self, value: int | float) -> int | float:
        """The raw value of an engineering value: (value - offset) / scale, rounded for
        an integer type; a whole number for a `keeps_integer` point exactly (no float
        division: int64 values beyond 2**53 stay exact). May be non-finite."""
        if self.keeps_integer and (isinstance(value, int) or value.is_integer()):
            return int(value)
        raw = (value - self.offset) / self.scale
        if self.type.is_integer and math.isfinite(raw):
            return round(raw)
        return raw

    def value_of(self, raw: bool | int | float | str) -> bool | int | float | str:
        """The engineering value of a raw value as the device holds it (any protocol):
        raw * scale + offset for numbers, an int staying an int for a `keeps_integer`
        point (the inverse of `raw_of`). Bools and text pass as they are; a NaN or
        infinite float raises CodecError."""
        if isinstance(raw, bool | str):
            return raw
        if isinstance(raw, float) and not math.isfinite(raw):
            raise CodecError(f"{self.name}: non-finite value {raw}")
        if self.scale == 1 and self.offset == 0:
            return raw
        return raw * self.scale + self.offset

    @property
    def max_chars(self) -> int | None:
        """Characters a string point holds at most (None: no bound of the protocol's)."""
        return self.length


@dataclass(frozen=True)
class ProtocolModels:
    """What a protocol module of `shopfloor.shared.protocols` exports as `MODELS`: its
    connection and point models (each with `protocol: Literal[name]`) and its whole-file
    checks: `machine_checks(base, machine)` the issues of one machine that speaks it
    (`base`: its path, `machines.X`), `plant_checks(machines)` those between machines
    (machine id -> Machine, only the ones that speak it)."""

    name: str
    connection: type[Connection]
    point: type[Point]
    machine_checks: Callable[[str, Any], Iterator[Issue]]
    plant_checks: Callable[[Mapping[str, Any]], Iterator[Issue]]
