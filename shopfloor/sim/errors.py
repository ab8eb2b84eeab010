"""Errors of the simulator."""

from __future__ import annotations

from shopfloor.shared.errors import ShopfloorError


class SimError(ShopfloorError):
    """Base of the simulator's errors."""

    prefix = "sim"


class Refused(SimError):
    """A Modbus request the simulated device refuses; `code` is the Modbus exception
    code it answers with (2 ILLEGAL_DATA_ADDRESS, 3 ILLEGAL_DATA_VALUE)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


class PortInUse(SimError):
    """A port the plant file gives a device cannot be listened on."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
