"""Pure encoding of validated messages into InfluxDB line protocol (ms precision).

Field types follow the plant's point types so that a field never changes type (InfluxDB
rejects a point whose field type differs from the stored one): float points and scaled
numeric points are always floats, unscaled integer points always integers (int64 range),
bools bools, strings strings. A value that does not fit its point is left out and
reported (it goes to the dead-letter topic; the rest of the sample is stored)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.shared import schema
from shopfloor.shared.contract import AgentStatus, StatePayload, Telemetry
from shopfloor.shared.enums import DataType
from shopfloor.shared.plant import Plant, Point
from shopfloor.shared.schema import to_ms

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NOT_A_POINT = "not a point of this machine"  # a bad_points reason: an unknown value key


class FieldKind(StrEnum):
    FLOAT = "float"
    INT = "integer"
    BOOL = "boolean"
    STRING = "string"


def field_kind(point: Point) -> FieldKind:
    """The InfluxDB field type of a point's engineering value (`Point.value_of`, where
    every protocol's decoding ends)."""
    if point.type is DataType.BOOL:
        return FieldKind.BOOL
    if point.type.is_text:
        return FieldKind.STRING
    if point.keeps_integer:
        return FieldKind.INT
    return FieldKind.FLOAT


def coerce(kind: FieldKind, value: object) -> bool | int | float | str:
    """The value as `kind`, or ValueError saying why it does not fit."""
    if kind is FieldKind.FLOAT:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
        raise ValueError(f"expected a finite number, got {value!r:.40}")
    if kind is FieldKind.INT:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if INT64_MIN <= value <= INT64_MAX:
                return value
            raise ValueError(f"integer {value} is outside the int64 range")
        raise ValueError(f"expected an integer, got {value!r:.40}")
    if kind is FieldKind.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"expected a bool, got {value!r:.40}")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r:.40}")


@dataclass(slots=True)
class Encoded:
    """Line protocol of one message; `values` counts stored point values; `bad_points`
    maps a point name to why its value was left out."""

    line: str | None
    values: int = 0
    bad_points: dict[str, str] = field(default_factory=dict)


_PYTHON_TYPE = {FieldKind.FLOAT: float, FieldKind.INT: int, FieldKind.BOOL: bool,
                FieldKind.STRING: str}
_FORMAT = {FieldKind.FLOAT: "{!r}", FieldKind.INT: "{}i", FieldKind.BOOL: "{}",
           FieldKind.STRING: "{}"}


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, slots=True)
class _Template:
    """The fields part of a telemetry line for one machine and one order of point names,
    when every value has its point's Python type: one `str.format` call instead of a loop
    of Python statements per value (the collector's hottest code). `convert` lists the
    positions whose value needs text first (bools, strings)."""

    types: tuple[type, ...]
    fmt: str
    floats: tuple[int, ...]
    ints: tuple[int, ...]
    convert: tuple[tuple[int, Callable[[Any], str]], ...]

    @classmethod
    def build(cls, names: tuple[str, ...], specs: dict[str, tuple[str, FieldKind]]
              ) -> _Template | None:
        if not names or any(name not in specs for name in names):
            return None  # unknown points: the general path reports them
        kinds = [specs[name][1] for name in names]
        return cls(
            types=tuple(_PYTHON_TYPE[k] for k in kinds),
            fmt=",".join(specs[name][0].replace("{", "{{").replace("}", "}}") + _FORMAT[k]
                         for name, k in zip(names, kinds, strict=True)),
            floats=tuple(i for i, k in enumerate(kinds) if k is FieldKind.FLOAT),
            ints=tuple(i for i, k in enumerate(kinds) if k is FieldKind.INT),
            convert=tuple((i, _bool_text if k is FieldKind.BOOL else _format)
                          for i, k in enumerate(kinds)
                          if k in (FieldKind.BOOL, FieldKind.STRING)),
        )

    def fields(self, values: Iterable[object]) -> str | None:
        """The fields text, or None when a value is not of its point's type, not finite
        or out of the int64 range (the general path then decides)."""
        row: list[Any] = list(values)
        if tuple(map(type, row)) != self.types:
            return None
        if self.floats and not math.isfinite(sum([row[i] for i in self.floats])):
            return None  # NaN or inf somewhere (or an overflowing sum: general path)
        if self.ints:
            ints = [row[i] for i in self.ints]
            if min(ints) < INT64_MIN or max(ints) > INT64_MAX:
                return None
        for i, text in self.convert:
            row[i] = text(row[i])
        return self.fmt.format(*row)


MAX_TEMPLATES = 16  # per machine: orders of point names seen (normally exactly one)


class Encoder:
    """Encodes messages for one plant. Per machine, the tag prefix, escaped field keys and
    field kinds are computed once. Telemetry goes through a `_Template` per machine and
    order of point names when every value has its point's type and there is no bad
    quality; anything else takes the general path, which formats value by value and
    falls back to `coerce` for values whose Python type differs from the point's. Both
    give the same line (tested)."""

    def __init__(self, plant: Plant) -> None:
        self._site = plant.site.id
        self._fields = {
            machine_id: {p.name: (f"{schema.escape_tag(p.name)}=", field_kind(p))
                         for p in machine.points}
            for machine_id, machine in plant.machines.items()
        }
        self._prefix: dict[tuple[str, str], str] = {}
        self._templates: dict[str, dict[tuple[str, ...], _Template | None]] = {}

    def encode(self, message: ParsedMessage, received_at: float) -> Encoded:
        """`received_at` (s since the epoch) stamps agent status without a ts."""
        payload = message.payload
        if message.kind is Kind.TELEMETRY:
            assert isinstance(payload, Telemetry)
            return self._telemetry(message, payload)
        if message.kind is Kind.STATE:
            assert isinstance(payload, StatePayload)
            return Encoded(state_line(message, payload), 1)
        assert isinstance(payload, AgentStatus)
        when = dt.datetime.fromtimestamp(received_at, dt.UTC)
        return Encoded(status_line(message, payload, when), 1)

    def _tag_prefix(self, line_id: str, machine: str) -> str:
        key = (line_id, machine)
        prefix = self._prefix.get(key)
        if prefix is None:
            tags = {schema.TAG_SITE: self._site, schema.TAG_LINE: line_id,
                    schema.TAG_MACHINE: machine}
            probe = schema.line(schema.TELEMETRY, tags, {"x": 0}, 0)
            assert probe is not None
            prefix = self._prefix[key] = probe.split(" ", 1)[0] + " "
        return prefix

    def _telemetry(self, message: ParsedMessage, payload: Telemetry) -> Encoded:
        if not payload.quality:
            values = payload.values
            template = self._template(message.machine, tuple(values))
            text = template.fields(values.values()) if template is not None else None
            if text is not None:
                line = (f"{self._tag_prefix(message.line, message.machine)}{text},"
                        f"{_seq_fields(payload)} {message.ts_ms}")
                return Encoded(line, len(values))
        return self._telemetry_general(message, payload)

    def _template(self, machine: str, names: tuple[str, ...]) -> _Template | None:
        known = self._templates.setdefault(machine, {})
        if names in known:
            return known[names]
        template = _Template.build(names, self._fields[machine])
        if len(known) < MAX_TEMPLATES:
            known[names] = template
        return template

    def _telemetry_general(self, message: ParsedMessage, payload: Telemetry) -> Encoded:
        fields = self._fields[message.machine]
        quality = payload.quality
        parts: list[str] = []
        bad: dict[str, str] = {}
        for name, value in payload.values.items():
            spec = fields.get(name)
            if spec is None:
                if not (quality and name in quality):
                    bad[name] = NOT_A_POINT
                continue
            if quality and name in quality:
                continue  # quality "bad": no trustworthy value in this sample
            prefix, kind = spec
            # Fast path, inlined (this loop runs for every value the plant sends): a
            # value that already has its point's Python type is formatted directly.
            kind_of = type(value)
            if kind_of is float:
                if kind is FieldKind.FLOAT and value - value == 0.0:  # type: ignore[operator]  # finite
                    parts.append(prefix + repr(value))
                    continue
            elif kind_of is int:
                if kind is FieldKind.INT and INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
                    parts.append(f"{prefix}{value}i")
                    continue
            elif kind_of is bool:
                if kind is FieldKind.BOOL:
                    parts.append(prefix + ("true" if value else "false"))
                    continue
            elif kind_of is str and kind is FieldKind.STRING:
                parts.append(prefix + _format(value))  # type: ignore[arg-type]
                continue
            try:
                parts.append(prefix + _format(coerce(kind, value)))
            except ValueError as exc:
                bad[name] = str(exc)
        stored = len(parts)
        parts.append(_seq_fields(payload))
        line = (self._tag_prefix(message.line, message.machine) + ",".join(parts)
                + f" {message.ts_ms}")
        return Encoded(line, stored, bad)


def _seq_fields(payload: Telemetry) -> str:
    """`_seq` and, when the sample names its stream, `_epoch` (docs/influxdb-schema.md)."""
    if payload.epoch is None:
        return f"{schema.SEQ_FIELD}={payload.seq}i"
    return f"{schema.SEQ_FIELD}={payload.seq}i,{schema.EPOCH_FIELD}={payload.epoch}i"


def _format(value: bool | int | float | str) -> str:
    text = schema.field_value(value)
    assert text is not None  # coerce() only returns storable values
    return text


def state_line(message: ParsedMessage, payload: StatePayload) -> str | None:
    """machine_state at `since`: state, reason, code, product, work_order (None left out)."""
    fields = {
        "state": str(payload.state),
        "reason": payload.reason,
        "code": payload.code,
        "product": payload.product,
        "work_order": payload.work_order,
    }
    present = {k: v for k, v in fields.items() if v is not None}
    tags = {schema.TAG_SITE: message.site, schema.TAG_LINE: message.line,
            schema.TAG_MACHINE: message.machine}
    return schema.line(schema.MACHINE_STATE, tags, present, to_ms(payload.since))


def status_line(
    message: ParsedMessage, payload: AgentStatus, received_at: dt.datetime
) -> str | None:
    """agent_status at the payload's ts (a last will has none: the receive time)."""
    fields: dict[str, object] = {"online": payload.online, "machines": ",".join(payload.machines)}
    if payload.version is not None:
        fields["version"] = payload.version
    if payload.queue_depth is not None:
        fields["queue_depth"] = payload.queue_depth
    if payload.overloaded is not None:
        fields["overloaded"] = payload.overloaded
    if payload.polls_skipped is not None:
        fields["polls_skipped"] = payload.polls_skipped
    if payload.online:  # always, so that the latest point says whether any are left
        fields["problems"] = "; ".join(payload.problems or ())
    tags = {schema.TAG_SITE: message.site, schema.TAG_AGENT: message.agent}
    return schema.line(schema.AGENT_STATUS, tags, fields, to_ms(payload.ts or received_at))
