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
  `start_in_maintenance` permission."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shopfloor.shared.contract import PointValue
from shopfloor.shared.enums import ControlAction
from shopfloor.shared.plant import Machine, Role


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


P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({P.READ}),
    Role.OPERATOR: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.CLASSIFY}),
    Role.SUPERVISOR: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.CHANGEOVER, P.STOCKTAKE,
                                P.AUDIT, P.CLASSIFY, P.RECLASSIFY}),
    Role.MAINTENANCE: frozenset({P.READ, P.OPERATE, P.SETPOINT, P.MAINTENANCE,
                                 P.START_IN_MAINTENANCE, P.AUDIT, P.CLASSIFY}),
    Role.ADMIN: frozenset(Permission),
}

A = ControlAction


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
ACTION_CONTROLS = frozenset(c for rule in RULES.values() for c in rule.controls)
"""The control roles some dedicated action writes (`speed` is not one of them)."""


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
