"""Fault injection modes of a simulated device (for the edge's fault tests).

normal: answers every request. silent: never answers (the client times out). slow:
answers after `delay_s` (default 2 s). exception: answers every request with Modbus
exception 4 (SLAVE_DEVICE_FAILURE). Parsed from `MACHINE=MODE` or `MACHINE=slow:SECONDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shopfloor.sim.errors import SimError

DEFAULT_SLOW_S = 2.0


class FaultMode(StrEnum):
    NORMAL = "normal"
    SILENT = "silent"
    SLOW = "slow"
    EXCEPTION = "exception"


@dataclass(frozen=True)
class Fault:
    mode: FaultMode = FaultMode.NORMAL
    delay_s: float = DEFAULT_SLOW_S

    @classmethod
    def parse(cls, text: str) -> Fault:
        """'silent', 'slow', 'slow:0.5', 'exception', 'normal' -> Fault."""
        mode_text, _, delay_text = text.strip().partition(":")
        try:
            mode = FaultMode(mode_text.lower())
        except ValueError:
            known = ", ".join(m.value for m in FaultMode)
            raise SimError(f"unknown fault mode {mode_text!r} (known: {known})") from None
        if not delay_text:
            return cls(mode)
        if mode is not FaultMode.SLOW:
            raise SimError(f"only slow takes a delay, not {mode_text!r}")
        try:
            delay = float(delay_text)
        except ValueError:
            raise SimError(f"slow delay {delay_text!r} is not a number of seconds") from None
        if not 0 <= delay <= 3600:
            raise SimError(f"slow delay {delay} s is outside 0..3600")
        return cls(mode, delay)


NORMAL = Fault()


def parse_assignment(text: str) -> tuple[str, Fault]:
    """'press1=slow:0.5' -> ('press1', Fault(SLOW, 0.5))."""
    machine, sep, mode = text.partition("=")
    if not sep or not machine.strip():
        raise SimError(f"fault {text!r} must look like MACHINE=MODE (e.g. press1=silent)")
    return machine.strip(), Fault.parse(mode)
