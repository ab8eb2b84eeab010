"""The control rules: one rule set for every path that writes a point. For a write —
its action, the caller's role, the machine, the point, the value and whether the machine
is in maintenance mode — whether it may happen, and if not, why. The API applies them
before it sends a command; the edge applies them again before it writes (defence in
depth). Pure functions, no I/O.

- Each action needs one permission of the caller's role (`ROLE_PERMISSIONS`).
- The dedicated actions write only their own control points (`control.run`, ...), the
  fixed-value ones only their value (start writes run = true, never false).
- A point a dedicated action writes (`control.run`, `alarm_ack`, `maintenance`,
  `product`, `work_order`) is not a free setpoint: the setpoint route refuses it unless
  the point says `free_setpoint: true` in the plant file, and then the write counts as
  the action it amounts to (run = true is a start), with that action's permission and
  interlock. `control.speed` belongs to no action: a plain setpoint.
- Maintenance interlock: while maintenance mode is on, start needs the
  `start_in_maintenance` permission.
- The value (`check_value`): the point must be writable, the value of its type (a bool,
  text in Latin-1 that fits, a finite number, whole for unscaled integer points), within
  min/max and the type's range."""

from __future__ import annotations

import datetime as dt
import math
import struct
from dataclasses import dataclass
from enum import StrEnum

from shopfloor.shared.contract import AlarmAction, CommandStatus, PointValue
from shopfloor.shared.enums import ControlAction, DataType
from shopfloor.shared.plant import Machine, Point, Role


class Permission(StrEnum):
    """What a request may do. The role table below is the single source; docs/api.md
    renders it and the auth-matrix test checks the two agree."""

    READ = "read"  # plant, live state, history, KPIs, WIP
    OPERATE = "operate"  # start, stop, alarm acknowledge, command lookup
    SETPOINT = "setpoint"  # write a point that no dedicated action owns
    CHANGEOVER = "changeover"  # product / work order
    MAINTENANCE = "maintenance"  # maintenance mode on/off
    START_IN_MAINTENANCE = "start_in_maintenance"  # start while maintenance mode is on
    STOCKTAKE = "stocktake"  # set a line's WIP anchor count
    AUDIT = "audit"  # read the command audit
    CLASSIFY = "classify"  # give downtime a reason, split it (own lines; not a person's reason)
    RECLASSIFY = "reclassify"  # change a reason a person gave
    ACKNOWLEDGE = "acknowledge"  # acknowledge an alarm (own lines), with a comment
    SHELVE = "shelve"  # shelve an alarm for a while with a reason, or unshelve it


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({P.READ}),
    Role.OPERATOR: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.CLASSIFY, P.ACKNOWLEDGE}),
    Role.SUPERVISOR: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.CHANGEOVER, P.STOCKTAKE,
                                P.AUDIT, P.CLASSIFY, P.RECLASSIFY, P.ACKNOWLEDGE,
                                P.SHELVE}),
    Role.MAINTENANCE: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.MAINTENANCE,
                                 P.START_IN_MAINTENANCE, P.AUDIT, P.CLASSIFY,
                                 P.ACKNOWLEDGE}),
    Role.ADMIN: frozenset(Permission),
}

A = ControlAction
MAX_COMMAND_LIFETIME = dt.timedelta(hours=1)
"""The edge refuses a command expiring further ahead than this (the API's commands live
`api.command_timeout_s`, seconds): a command cannot lie in wait for days."""


@dataclass(frozen=True, slots=True)
class ActionRule:
    """An action: the permission it needs, the control roles (fields of the plant
    file's `control` section) it writes, and its fixed value (None: the caller's)."""

    permission: Permission
    controls: tuple[str, ...]
    value: bool | None = None


RULES: dict[ControlAction, ActionRule] = {
    A.START: ActionRule(P.OPERATE, ("run",), True),
    A.STOP: ActionRule(P.OPERATE, ("run",), False),
    A.ALARM_ACK: ActionRule(P.OPERATE, ("alarm_ack",), True),
    A.MAINTENANCE_ON: ActionRule(P.MAINTENANCE, ("maintenance",), True),
    A.MAINTENANCE_OFF: ActionRule(P.MAINTENANCE, ("maintenance",), False),
    A.CHANGEOVER: ActionRule(P.CHANGEOVER, ("product", "work_order")),
    A.SETPOINT: ActionRule(P.SETPOINT, ()),
}
ALARM_PERMISSIONS: dict[AlarmAction, Permission] = {
    AlarmAction.ACK: P.ACKNOWLEDGE,
    AlarmAction.SHELVE: P.SHELVE,
    AlarmAction.UNSHELVE: P.SHELVE,
}
"""The permission each action on an alarm needs (the API checks it, the alarm component
again on the role the command carries)."""
ACTION_CONTROLS = frozenset(c for rule in RULES.values() for c in rule.controls)
"""The control roles some dedicated action writes (`speed` is not one of them)."""


def expiry_refusal(expires_at: dt.datetime, now: dt.datetime
                   ) -> tuple[CommandStatus, str] | None:
    """The one expiry rule of every command (the edge's writes, the alarm component's
    actions): expired at `expires_at`, or refused when it expires further ahead than
    MAX_COMMAND_LIFETIME; None when it may run."""
    if expires_at <= now:
        return CommandStatus.EXPIRED, f"expired at {expires_at.isoformat()}"
    if expires_at > now + MAX_COMMAND_LIFETIME:
        return CommandStatus.REJECTED, (f"expires_at {expires_at.isoformat()} is more "
                                        f"than {MAX_COMMAND_LIFETIME} ahead")
    return None


class RefusalKind(StrEnum):
    FORBIDDEN = "forbidden"  # the role lacks the permission (HTTP 403)
    CONFLICT = "conflict"  # an interlock (HTTP 409)
    INVALID = "invalid"  # not this point, not this value (HTTP 422)


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    code: str
    message: str


def can(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def action_control(machine: Machine, point: str) -> str | None:
    """The control role (run, maintenance, ...) of a dedicated action that writes
    `point` on this machine, or None when no action owns the point."""
    for control, name in machine.control:
        if name == point and control in ACTION_CONTROLS:
            return control
    return None


def owner_action(machine: Machine, point: str, value: PointValue) -> ControlAction | None:
    """The dedicated action a write of `point` = `value` amounts to (None: none owns it)."""
    control = action_control(machine, point)
    if control is None:
        return None
    actions = [action for action, rule in RULES.items() if control in rule.controls]
    exact = [a for a in actions if RULES[a].value is None or RULES[a].value is value]
    return (exact or actions)[0]


def effective_action(machine: Machine, action: ControlAction, point: str,
                     value: PointValue) -> ControlAction:
    """What a write really is: a setpoint of an action's point is that action."""
    if action is A.SETPOINT:
        return owner_action(machine, point, value) or action
    return action


def check_write(role: Role, machine: Machine, action: ControlAction, point: str,
                value: PointValue, in_maintenance: bool) -> Refusal | None:
    """Why this write must not happen, or None when the rules allow it. The value's
    type and range are checked separately (against the point's register map)."""
    refusal = _check_target(machine, action, point, value)
    if refusal is not None:
        return refusal
    real = effective_action(machine, action, point, value)
    permission = RULES[real].permission
    if not can(role, permission):
        via = f" (a setpoint of {point} = {value!r} is a {real})" if real is not action else ""
        return Refusal(RefusalKind.FORBIDDEN, "forbidden",
                       f"role {role} may not {real}{via}: needs the {permission} permission")
    if interlocked(role, real) and in_maintenance:
        return Refusal(RefusalKind.CONFLICT, "maintenance_interlock",
                       "machine is in maintenance mode: only the maintenance role may start it")
    return None


def interlocked(role: Role, action: ControlAction) -> bool:
    """Whether the maintenance interlock applies to this role's `action` (the edge then
    reads the maintenance point before writing)."""
    return action is A.START and not can(role, P.START_IN_MAINTENANCE)


def _check_target(machine: Machine, action: ControlAction, point: str,
                  value: PointValue) -> Refusal | None:
    control = action_control(machine, point)
    if action is A.SETPOINT:
        if control is None:
            return None
        spec = machine.point(point)
        if spec is not None and spec.free_setpoint:
            return None
        owner = owner_action(machine, point, value)
        return Refusal(RefusalKind.INVALID, "action_point",
                       f"point {point} is control.{control}, written by the {owner or control} "
                       "action, not as a setpoint (the plant file may allow it with "
                       "free_setpoint: true)")
    rule = RULES[action]
    if control not in rule.controls:
        return Refusal(RefusalKind.INVALID, "wrong_point",
                       f"the {action} action does not write point {point}")
    if rule.value is not None and value is not rule.value:
        return Refusal(RefusalKind.INVALID, "wrong_value",
                       f"the {action} action writes {point} = {rule.value}, not {value!r}")
    return None


def check_value(point: Point, value: PointValue) -> Refusal | None:
    """Why `value` must not be written to `point` (codes not_writable, wrong_type,
    out_of_range), or None. The one write check of the API and the edge."""
    if not point.writable:
        return _invalid("not_writable", f"point {point.name!r} is not writable")
    if point.type is DataType.BOOL:
        ok = isinstance(value, bool)
    elif point.type is DataType.STRING:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        return _invalid("wrong_type", f"point {point.name!r} takes a {point.type} value, "
                        f"not {type(value).__name__}")
    if isinstance(value, str):
        return _check_text(point, value)
    if isinstance(value, bool):
        return None
    return _check_number(point, value)


def exact_value(point: Point, value: PointValue) -> PointValue:
    """The value as sent: a whole float for an unscaled integer point becomes an int."""
    if point.keeps_integer and isinstance(value, float):
        return int(value)
    return value


def _check_text(point: Point, value: str) -> Refusal | None:
    try:
        size = len(value.encode("latin-1"))
    except UnicodeEncodeError:
        return _invalid("wrong_type", f"point {point.name!r} takes Latin-1 text only")
    limit = point.max_chars
    if limit is not None and size > limit:
        return _invalid("out_of_range", f"point {point.name!r} holds at most {limit} characters")
    return None


def _check_number(point: Point, value: int | float) -> Refusal | None:
    if not math.isfinite(value):  # JSON may carry Infinity/NaN
        return _invalid("wrong_type", f"point {point.name!r} takes a finite number, "
                        f"not {value!r}")
    if point.keeps_integer and value != int(value):
        return _invalid("wrong_type", f"point {point.name!r} takes an integer, not {value!r}")
    refusal = check_limits(point, value)
    if refusal is not None:
        return refusal
    why = _raw_misfit(point, value)
    if why is not None:
        return _invalid("out_of_range", f"value {value!r} does not fit {point.type}: {why}")
    return None


def check_limits(point: Point, value: int | float) -> Refusal | None:
    """Why a number is outside the point's min/max (engineering units), or None. Also
    the simulated devices' check of a client's write (sim/registers.py)."""
    if point.min is not None and value < point.min:
        return _invalid("out_of_range", f"value {value} is below min {point.min:g} of "
                        f"{point.name!r}")
    if point.max is not None and value > point.max:
        return _invalid("out_of_range", f"value {value} is above max {point.max:g} of "
                        f"{point.name!r}")
    return None


def _raw_misfit(point: Point, value: int | float) -> str | None:
    """Why the raw value (`Point.raw_of`: (value - offset) / scale, rounded for an
    integer type) is outside the point's type, or None (whatever the protocol carries
    it in)."""
    raw = point.raw_of(value)
    if not math.isfinite(raw):
        return f"raw value {raw} is not finite"
    if point.type.is_integer:
        low, high = point.type.int_range
        return None if low <= raw <= high else f"raw {raw} is outside {low}..{high}"
    if point.type is DataType.FLOAT32:
        try:
            struct.pack(">f", raw)
        except OverflowError:
            return f"raw {raw!r} is beyond float32"
    return None


def _invalid(code: str, message: str) -> Refusal:
    return Refusal(RefusalKind.INVALID, code, message)
