"""The edge agent's exceptions. Each carries the device or topic it is about."""

from __future__ import annotations

from shopfloor.shared.enums import DeviceFailure
from shopfloor.shared.errors import ShopfloorError


class EdgeError(ShopfloorError):
    """Base of the edge agent's errors."""

    prefix = "edge"


class DeviceError(EdgeError):
    """A Modbus device did not answer, answered with an exception, or is unreachable.
    `machine` names the device; `kind` says why (`shared.enums.DeviceFailure`)."""

    prefix = "device"

    def __init__(self, machine: str, kind: DeviceFailure, detail: str) -> None:
        self.machine = machine
        self.kind = kind
        self.detail = detail
        super().__init__(f"{machine}: {kind}: {detail}")


class OutboxError(EdgeError):
    """The durable outbox (SQLite) cannot be opened or written."""

    prefix = "outbox"


class DeviceRefusedWrite(DeviceError):
    """The device refused to take a value (a Modbus exception answer to a write, an OPC
    UA write's bad status code): the command is `rejected` with `detail`, not `failed`."""

    prefix = "refused"
