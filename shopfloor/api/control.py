"""Control actions checked against the plant file, before anything is sent: which point
each action writes, whether the point exists and is writable, whether the value has the
point's type and lies within its min/max; then the control rules (shared.control_rules:
permission, points owned by an action, the maintenance interlock). Pure functions."""

from __future__ import annotations

from shopfloor.api.commands import WriteRequest
from shopfloor.api.errors import ApiError, Conflict, Forbidden, Invalid
from shopfloor.api.security import Principal
from shopfloor.shared import control_rules as rules
from shopfloor.shared.contract import PointValue
from shopfloor.shared.enums import ControlAction
from shopfloor.shared.plant import Machine, Point

Action = ControlAction


def check_value(point: Point, value: PointValue) -> PointValue:
    """The value to send for `point`, or Invalid naming what is wrong (the one write
    check, shared.control_rules.check_value, that the edge applies too)."""
    refusal = rules.check_value(point, value)
    if refusal is not None:
        raise Invalid(refusal.message, refusal.code)
    return rules.exact_value(point, value)


def write(machine: Machine, point_name: str, value: PointValue) -> WriteRequest:
    """A checked write of any point of the machine (the setpoint action)."""
    point = machine.point(point_name)
    if point is None:
        raise Invalid(f"machine has no point {point_name!r}", "unknown_point")
    return WriteRequest(point.name, check_value(point, value))


def control_write(machine: Machine, role: str, value: PointValue) -> WriteRequest:
    """A write of the point the plant file maps to a control role (run, alarm_ack, ...)."""
    point_name = getattr(machine.control, role)
    if point_name is None:
        raise Invalid(f"machine has no control.{role} point in the plant file", "not_supported")
    return write(machine, point_name, value)


def plan(machine: Machine, action: Action) -> list[WriteRequest]:
    """The writes of the fixed-value actions (start, stop, alarm ack, maintenance)."""
    rule = rules.RULES[action]
    assert rule.value is not None, f"{action} has no fixed value"
    return [control_write(machine, rule.controls[0], rule.value)]


def plan_changeover(machine: Machine, product: str | int,
                    work_order: str | None) -> list[WriteRequest]:
    """Write the product's code, then the work order when given. `product` is a product
    id from the plant file or its numeric code."""
    match = next(
        (p for p in machine.products if p.id == product or (
            isinstance(product, int) and not isinstance(product, bool) and p.code == product)),
        None,
    )
    if match is None:
        known = ", ".join(f"{p.id} (code {p.code})" for p in machine.products) or "none"
        raise Invalid(f"unknown product {product!r}; this machine makes: {known}",
                      "unknown_product")
    writes = [control_write(machine, "product", match.code)]
    if work_order is not None:
        writes.append(control_write(machine, "work_order", work_order))
    return writes


REFUSAL_ERRORS: dict[rules.RefusalKind, type[ApiError]] = {
    rules.RefusalKind.FORBIDDEN: Forbidden,
    rules.RefusalKind.CONFLICT: Conflict,
    rules.RefusalKind.INVALID: Invalid,
}


def check_rules(principal: Principal, machine: Machine, action: Action, write: WriteRequest,
                in_maintenance: bool) -> WriteRequest:
    """The write with the action it really is (a setpoint of run = true is a start), or
    the ApiError of the control rules (403 permission, 409 interlock, 422 not this point)."""
    refusal = rules.check_write(principal.role, machine, action, write.point, write.value,
                                in_maintenance)
    if refusal is not None:
        raise REFUSAL_ERRORS[refusal.kind](refusal.message, refusal.code)
    real = rules.effective_action(machine, action, write.point, write.value)
    return WriteRequest(write.point, write.value, real)
