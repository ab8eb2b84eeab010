"""Whole-file checks of a structurally valid plant: references between sections,
duplicates, and each field protocol's own checks (`shopfloor.shared.protocols`: for
Modbus, overlapping registers and devices). Each returns (path, message) pairs; none
raises."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator

from shopfloor.shared.alarm_rules import (
    COMMON_FIELDS,
    FIELDS,
    SITE_KINDS,
    STOPPED_STATES,
    RuleKind,
    RuleMap,
    effective,
)
from shopfloor.shared.control_rules import ACTION_CONTROLS, MAX_COMMAND_LIFETIME
from shopfloor.shared.notifications import check_notifications
from shopfloor.shared.plant import Machine, Plant
from shopfloor.shared.protocols import PROTOCOLS
from shopfloor.shared.protocols.base import Issue
from shopfloor.shared.reasons import Category


def check_plant(plant: Plant) -> list[Issue]:
    """Every cross-reference problem of the plant, in file order."""
    issues: list[Issue] = []
    for check in (_lines, _machines, _devices, _agents, _calendar, _api, _downtime,
                  _alarms, check_notifications):
        issues.extend(check(plant))
    return issues


def _duplicates(path: str, values: list[str], what: str) -> Iterator[Issue]:
    for value, n in Tally(values).items():
        if n > 1:
            yield path, f"{what} {value!r} appears {n} times; ids must be unique"


def _lines(plant: Plant) -> Iterator[Issue]:
    yield from _duplicates("lines", [line.id for line in plant.lines], "line id")
    for i, line in enumerate(plant.lines):
        yield from _duplicates(f"lines[{i}].stations", line.stations, "station")
        for j, station in enumerate(line.stations):
            machine = plant.machines.get(station)
            if machine is None:
                yield f"lines[{i}].stations[{j}]", f"unknown machine {station!r}"
            elif machine.line != line.id:
                yield (
                    f"lines[{i}].stations[{j}]",
                    f"machine {station!r} says it is on line {machine.line!r}",
                )
        for name in line.buffer_capacity:
            if name not in line.stations[:-1]:
                yield (
                    f"lines[{i}].buffer_capacity.{name}",
                    "a buffer is named by its upstream station (any station but the last)",
                )


def _machines(plant: Plant) -> Iterator[Issue]:
    line_ids = {line.id for line in plant.lines}
    for mid, machine in plant.machines.items():
        base = f"machines.{mid}"
        if machine.line not in line_ids:
            yield f"{base}.line", f"unknown line {machine.line!r} (known: {sorted(line_ids)})"
        yield from _duplicates(f"{base}.points", [p.name for p in machine.points], "point")
        yield from PROTOCOLS[machine.connection.protocol].machine_checks(base, machine)
        yield from _roles(base, machine)
        yield from _products(base, machine)


def _point_ref(base: str, machine: Machine, field: str, name: str | None) -> Iterator[Issue]:
    if name is not None and machine.point(name) is None:
        yield f"{base}.{field}", f"unknown point {name!r}"


def _roles(base: str, machine: Machine) -> Iterator[Issue]:
    if machine.state is not None:
        yield from _point_ref(base, machine, "state.point", machine.state.point)
    if machine.counters is not None:
        for field in ("total", "reject"):
            name = getattr(machine.counters, field)
            yield from _point_ref(base, machine, f"counters.{field}", name)
            point = machine.point(name) if name else None
            if point is not None and not point.type.is_unsigned_int:
                yield (
                    f"{base}.counters.{field}",
                    f"counter point {name!r} has type {point.type}; a counter must be "
                    "uint16, uint32 or uint64",
                )
            if point is not None and (point.scale != 1 or point.offset != 0):
                yield f"{base}.counters.{field}", "a counter point must not be scaled"
    for field, name in machine.control.model_dump().items():
        yield from _point_ref(base, machine, f"control.{field}", name)
        point = machine.point(name) if name else None
        if point is not None and not point.writable:
            yield f"{base}.control.{field}", f"point {name!r} must be writable: true"
    yield from _free_setpoints(base, machine)


def _free_setpoints(base: str, machine: Machine) -> Iterator[Issue]:
    """free_setpoint only opens a point that a control action writes, and only a writable one."""
    owned = {name for field, name in machine.control if field in ACTION_CONTROLS}
    for i, point in enumerate(machine.points):
        if point.free_setpoint and point.name not in owned:
            yield (f"{base}.points[{i}].free_setpoint",
                   f"point {point.name!r} is written by no control action "
                   f"({', '.join(sorted(ACTION_CONTROLS))}); it is a setpoint anyway when "
                   "writable: remove free_setpoint")
        elif point.free_setpoint and not point.writable:
            yield (f"{base}.points[{i}].free_setpoint",
                   f"point {point.name!r} must be writable: true to be a free setpoint")


def _products(base: str, machine: Machine) -> Iterator[Issue]:
    yield from _duplicates(f"{base}.products", [p.id for p in machine.products], "product")
    codes = [str(p.code) for p in machine.products]
    yield from _duplicates(f"{base}.products", codes, "product code")


def _devices(plant: Plant) -> Iterator[Issue]:
    """Each protocol's checks between the machines that speak it."""
    for name, models in PROTOCOLS.items():
        speaking = {mid: m for mid, m in plant.machines.items()
                    if m.connection.protocol == name}
        yield from models.plant_checks(speaking)


def _agents(plant: Plant) -> Iterator[Issue]:
    yield from _duplicates("agents", [a.id for a in plant.agents], "agent id")
    owner: dict[str, str] = {}
    for i, agent in enumerate(plant.agents):
        for j, mid in enumerate(agent.machines):
            path = f"agents[{i}].machines[{j}]"
            if mid not in plant.machines:
                yield path, f"unknown machine {mid!r}"
            elif mid in owner:
                yield path, f"machine {mid!r} is already polled by agent {owner[mid]!r}"
            else:
                owner[mid] = agent.id


def _calendar(plant: Plant) -> Iterator[Issue]:
    names = [s.name for s in plant.calendar.shifts]
    yield from _duplicates("calendar.shifts", names, "shift")
    for i, shift in enumerate(plant.calendar.shifts):
        if shift.start == shift.end:
            yield f"calendar.shifts[{i}].end", "a shift must not start and end at the same time"


def _api(plant: Plant) -> Iterator[Issue]:
    if plant.api.command_timeout_s > MAX_COMMAND_LIFETIME.total_seconds():
        yield ("api.command_timeout_s", f"at most {MAX_COMMAND_LIFETIME.total_seconds():g} s: "
               "the edge refuses commands that expire further ahead")
    yield from _duplicates("api.keys", [k.name for k in plant.api.keys], "key name")
    line_ids = {line.id for line in plant.lines}
    for i, key in enumerate(plant.api.keys):
        for j, line in enumerate(key.lines or []):
            if line not in line_ids:
                yield f"api.keys[{i}].lines[{j}]", f"unknown line {line!r}"


def _downtime(plant: Plant) -> Iterator[Issue]:
    """The reason tree: known lines, unique category ids and reason codes (plant-wide +
    each line's additions), PLC codes that some state map gives, each mapped once."""
    downtime = plant.downtime
    line_ids = {line.id for line in plant.lines}
    plc_known = {code.reason for m in plant.machines.values() if m.state is not None
                 for code in (*m.state.codes.values(), m.state.unmapped) if code.reason}
    yield from _tree("downtime", downtime.categories, plc_known, {}, {})
    for line, extra in downtime.lines.items():
        base = f"downtime.lines.{line}"
        if line not in line_ids:
            yield base, f"unknown line {line!r} (known: {sorted(line_ids)})"
        codes: dict[str, str] = {}
        plc: dict[str, str] = {}
        list(_tree("downtime", downtime.categories, plc_known, codes, plc))
        yield from _tree(base, extra.categories, plc_known, codes, plc)


def _tree(base: str, categories: list[Category], plc_known: set[str],
          codes: dict[str, str], plc: dict[str, str]) -> Iterator[Issue]:
    """Issues of `categories`, given the codes and PLC codes already taken (updated)."""
    yield from _duplicates(f"{base}.categories", [c.id for c in categories], "category id")
    for i, category in enumerate(categories):
        for j, reason in enumerate(category.reasons):
            path = f"{base}.categories[{i}].reasons[{j}]"
            if reason.code in codes:
                yield f"{path}.code", (f"duplicate reason code {reason.code!r} (also at "
                                       f"{codes[reason.code]})")
            else:
                codes[reason.code] = path
            for k, code in enumerate(reason.plc):
                if code in plc:
                    yield f"{path}.plc[{k}]", (f"PLC reason {code!r} is mapped twice (also "
                                               f"to reason {plc[code]!r})")
                else:
                    plc[code] = reason.code
                if code not in plc_known:
                    yield f"{path}.plc[{k}]", (f"unknown PLC reason {code!r}: no machine's "
                                               f"state map gives it (known: {sorted(plc_known)})")


def _alarms(plant: Plant) -> Iterator[Issue]:
    """Alarm overrides name known lines and machines and only the fields their rule kind
    takes; site rules (collectors) only under `defaults`; `states` never `running`;
    buffer limits in order and only where there is a buffer."""
    alarms = plant.alarms
    yield from _rule_map("alarms.defaults", alarms.defaults)
    line_ids = {line.id for line in plant.lines}
    for line, rules in alarms.lines.items():
        if line not in line_ids:
            yield f"alarms.lines.{line}", f"unknown line {line!r} (known: {sorted(line_ids)})"
        yield from _rule_map(f"alarms.lines.{line}", rules, site_allowed=False)
    for machine, rules in alarms.machines.items():
        if machine not in plant.machines:
            yield (f"alarms.machines.{machine}",
                   f"unknown machine {machine!r} (known: {sorted(plant.machines)})")
        yield from _rule_map(f"alarms.machines.{machine}", rules, site_allowed=False)
    yield from _buffer_limits(plant)


def _rule_map(base: str, rules: RuleMap, site_allowed: bool = True) -> Iterator[Issue]:
    for kind, rule in rules.items():
        path = f"{base}.{kind}"
        if kind in SITE_KINDS and not site_allowed:
            yield path, (f"{kind} is a rule of the site's collectors: set it under "
                         "alarms.defaults")
        allowed = COMMON_FIELDS | FIELDS[kind]
        for name in sorted(rule.model_fields_set - allowed):
            if getattr(rule, name) is not None:
                yield f"{path}.{name}", (f"`{name}` does not apply to {kind} rules (they "
                                         f"take: {sorted(allowed)})")
        if kind is RuleKind.MACHINE_STOPPED and rule.states is not None:
            for state in rule.states:
                if state not in STOPPED_STATES:
                    yield f"{path}.states", (
                        f"{str(state)!r} is not a stopped state (allowed: "
                        f"{sorted(str(s) for s in STOPPED_STATES)})")


def _buffer_limits(plant: Plant) -> Iterator[Issue]:
    """An enabled buffer_wip rule of a machine with a buffer after it needs limits in
    order; a machine with no buffer after it cannot be given one."""
    upstream = {s for line in plant.lines for s in line.stations[:-1]}
    for mid, rules in plant.alarms.machines.items():
        if RuleKind.BUFFER_WIP in rules and mid in plant.machines and mid not in upstream:
            yield (f"alarms.machines.{mid}.buffer_wip",
                   f"{mid} has no buffer after it (buffers are named by their upstream "
                   "station: any station of a line but the last)")
    for mid in sorted(upstream & set(plant.machines)):
        rule = effective(plant.alarms, RuleKind.BUFFER_WIP, plant.machines[mid].line, mid)
        if not rule.enabled:
            continue
        path = f"alarms.machines.{mid}.buffer_wip"
        if rule.min_parts is None and rule.max_parts is None:
            yield path, "enabled without min_parts or max_parts (set them at any level)"
        elif rule.min_parts is not None and rule.max_parts is not None \
                and rule.min_parts > rule.max_parts:
            yield path, (f"min_parts {rule.min_parts} (from its levels) is above "
                         f"max_parts {rule.max_parts}")
