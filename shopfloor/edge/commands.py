"""Commands, the edge's half: validate a write against the plant file (pure), then
write through the machine's driver (any protocol), read back, and answer on
`.../cmd/result`.

Refused (status `rejected`, `detail` says why): an unknown point, a point that is not
writable, a value of the wrong type or outside min/max (or that does not fit the
point's type), a write the control rules refuse (shared.control_rules: the requester's
role, points owned by an action, the maintenance interlock — the same rules as the
API's), an id already executed (ids are kept in SQLite: at most once, across restarts).
An expired command gets status `expired`, one that expires further ahead than
`MAX_LIFETIME` is refused. A device error gets `failed` (`<protocol>: <kind>: ...`), a
value the device refuses `rejected`, and a read-back that differs from the value
written `failed`: `done` always means the device holds the value asked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from shopfloor.edge.drivers.base import Driver
from shopfloor.edge.errors import DeviceError, DeviceRefusedWrite
from shopfloor.shared import control_rules
from shopfloor.shared.contract import Command, CommandResult, CommandStatus
from shopfloor.shared.contract import PointValue as Value
from shopfloor.shared.errors import CodecError
from shopfloor.shared.plant import Machine

log = logging.getLogger(__name__)

Refusal = tuple[CommandStatus, str]


MAX_LIFETIME = control_rules.MAX_COMMAND_LIFETIME


def check_command(machine: Machine, command: Command, now: dt.datetime) -> Refusal | None:
    """Why the command must not run (its expiry, its value, the control rules apart from
    the interlock, which needs the device: see `check_interlock`), or None when it may."""
    return (control_rules.expiry_refusal(command.expires_at, now)
            or _check_point(machine, command) or _check_rules(machine, command, False))


def _check_rules(machine: Machine, command: Command, in_maintenance: bool) -> Refusal | None:
    if command.role is None:
        return CommandStatus.REJECTED, "command names no role: the control rules cannot apply"
    refusal = control_rules.check_write(command.role, machine, command.control_action,
                                        command.point, command.value, in_maintenance)
    if refusal is None:
        return None
    return CommandStatus.REJECTED, f"{refusal.code}: {refusal.message}"


async def check_interlock(machine_id: str, machine: Machine, driver: Driver,
                          command: Command) -> Refusal | None:
    """The maintenance interlock, on the maintenance point read from the device now."""
    assert command.role is not None
    real = control_rules.effective_action(machine, command.control_action, command.point,
                                          command.value)
    name = machine.control.maintenance
    point = machine.point(name) if name else None
    if point is None or not control_rules.interlocked(command.role, real):
        return None
    try:
        in_maintenance = await driver.read_point(machine_id, point) is True
    except (DeviceError, CodecError) as exc:
        return CommandStatus.FAILED, f"maintenance point unreadable: {exc}"
    return _check_rules(machine, command, in_maintenance)


def _check_point(machine: Machine, command: Command) -> Refusal | None:
    point = machine.point(command.point)
    if point is None:
        return CommandStatus.REJECTED, f"unknown point {command.point!r}"
    refusal = control_rules.check_value(point, command.value)
    return None if refusal is None else (CommandStatus.REJECTED, refusal.message)


async def execute(
    machine_id: str, machine: Machine, driver: Driver, command: Command
) -> tuple[CommandStatus, str, Value | None]:
    """Write the value, read it back. (status, detail, readback). The caller serialises
    the writes of a machine, so the read-back is this write's."""
    point = machine.point(command.point)
    assert point is not None
    try:
        expected = await driver.write(machine_id, point, command.value)
        readback = await driver.read_point(machine_id, point)
    except DeviceRefusedWrite as exc:
        return CommandStatus.REJECTED, f"{driver.protocol}: {exc.detail}", None
    except DeviceError as exc:
        return CommandStatus.FAILED, f"{driver.protocol}: {exc.kind}: {exc.detail}", None
    except CodecError as exc:
        return CommandStatus.FAILED, f"read-back does not decode: {exc}", None
    if readback != expected:
        return CommandStatus.FAILED, f"read back {readback!r}, not {expected!r}", readback
    return CommandStatus.DONE, "written and read back", readback


def result_payload(
    command_id: str, status: CommandStatus, detail: str, readback: Value | None, now: dt.datetime
) -> bytes:
    return CommandResult(
        id=command_id, status=status, detail=detail, readback=readback, ts=now
    ).to_json()


def extract_id(raw: bytes) -> str | None:
    """The id of a command that did not validate, if one can be read from it."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    found = data.get("id") if isinstance(data, dict) else None
    if isinstance(found, str) and 0 < len(found) <= 64:
        return found
    return None
