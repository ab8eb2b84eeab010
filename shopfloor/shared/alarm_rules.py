"""The alarm rules of the plant file (`alarms:`): plant-wide `defaults`, then per-line
and per-machine overrides, each a map from rule kind to the fields it changes. Whole-file
checks live in `plant_checks._alarms`; `rules_for` gives one machine's effective rules.

A rule raises when its condition has held for `after_s` (on-delay) and clears when the
condition has been gone for `clear_after_s` (off-delay, the deadband against chatter),
both measured on event time. docs/alarms.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shopfloor.shared.enums import MachineState

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Seconds = Annotated[float, Field(ge=0, le=7 * 86_400)]


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RuleKind(StrEnum):
    """The rule types built so far (docs/alarms.md lists those still to come)."""

    MACHINE_STOPPED = "machine_stopped"
    """The machine's state is one of `states` (default stopped, idle)."""
    AGENT_OFFLINE = "agent_offline"
    """The edge agent polling the machine is offline or its status has gone quiet."""


STOPPED_STATES = frozenset({MachineState.STOPPED, MachineState.IDLE,
                            MachineState.SETUP, MachineState.PLANNED_STOP,
                            MachineState.OFFLINE})
"""States a `machine_stopped` rule may watch (any but running)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleOverride(_Model):
    """The fields one level sets; a field left out keeps the level above's value."""

    enabled: bool | None = None
    severity: Severity | None = None
    after_s: Seconds | None = None
    """On-delay: the condition must hold this long before the alarm raises."""
    clear_after_s: Seconds | None = None
    """Off-delay: the condition must be gone this long before the alarm clears."""
    states: Annotated[list[MachineState], Field(min_length=1)] | None = None
    """machine_stopped only: which states count as stopped."""


RuleMap = dict[RuleKind, RuleOverride]


class Alarms(_Model):
    """`alarms:` of the plant file."""

    defaults: RuleMap = Field(default_factory=dict)
    lines: dict[Ident, RuleMap] = Field(default_factory=dict)
    machines: dict[Ident, RuleMap] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rule:
    """One machine's effective rule of one kind."""

    kind: RuleKind
    enabled: bool
    severity: Severity
    after_s: float
    clear_after_s: float
    states: frozenset[MachineState] = frozenset()


BUILT_IN: dict[RuleKind, Rule] = {
    RuleKind.MACHINE_STOPPED: Rule(RuleKind.MACHINE_STOPPED, True, Severity.MEDIUM,
                                   600.0, 30.0,
                                   frozenset({MachineState.STOPPED, MachineState.IDLE})),
    RuleKind.AGENT_OFFLINE: Rule(RuleKind.AGENT_OFFLINE, True, Severity.HIGH, 60.0, 10.0),
}
"""What a rule is when the plant file says nothing about it."""


def _apply(rule: Rule, override: RuleOverride | None) -> Rule:
    if override is None:
        return rule
    return Rule(
        kind=rule.kind,
        enabled=rule.enabled if override.enabled is None else override.enabled,
        severity=override.severity or rule.severity,
        after_s=rule.after_s if override.after_s is None else override.after_s,
        clear_after_s=(rule.clear_after_s if override.clear_after_s is None
                       else override.clear_after_s),
        states=rule.states if override.states is None else frozenset(override.states),
    )


def rules_for(alarms: Alarms, line: str, machine: str) -> dict[RuleKind, Rule]:
    """Built-in, then `defaults`, then the line's, then the machine's fields: the
    effective enabled rules of `machine` on `line`."""
    effective: dict[RuleKind, Rule] = {}
    for kind, rule in BUILT_IN.items():
        for level in (alarms.defaults, alarms.lines.get(line, {}),
                      alarms.machines.get(machine, {})):
            rule = _apply(rule, level.get(kind))
        if rule.enabled:
            effective[kind] = rule
    return effective
