"""The alarm rules of the plant file (`alarms:`): plant-wide `defaults`, then per-line
and per-machine overrides, each a map from rule kind to the fields it changes. Whole-file
checks live in `plant_checks._alarms`; `rules_for` gives one machine's effective rules.

A rule raises when its condition has held for `after_s` (on-delay) and clears when the
condition has been gone for `clear_after_s` (off-delay, the deadband against chatter),
both measured on event time. docs/alarms.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Any

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
    """Every rule type (docs/alarms.md, "Rules")."""

    MACHINE_STOPPED = "machine_stopped"
    """The machine's state is one of `states` (default stopped, idle)."""
    AGENT_OFFLINE = "agent_offline"
    """The edge agent polling the machine is offline or its status has gone quiet."""
    DOWNTIME_UNCLASSIFIED = "downtime_unclassified"
    """The machine has a downtime event (part) nobody classified (InfluxDB `downtime`)."""
    COVERAGE_LOW = "coverage_low"
    """The machine's data coverage over the KPI `window` is below `below_pct`."""
    SHIFT_KPI_LOW = "shift_kpi_low"
    """The shift's `kpi` (OEE, A, P or Q) is below `below_pct`, `after_shift_s` into it."""
    BUFFER_WIP = "buffer_wip"
    """The buffer after the machine (its line's next station) holds more than
    `max_parts` or fewer than `min_parts`."""
    COLLECTOR_LAG = "collector_lag"
    """A collector's end-to-end lag (p99 of a stats period) is above `max_lag_s`."""
    DEAD_LETTERS = "dead_letters"
    """A collector dead-lettered at least `min_increase` messages in a stats period."""


SITE_KINDS = frozenset({RuleKind.COLLECTOR_LAG, RuleKind.DEAD_LETTERS})
"""Rules of the site's collectors, not of a machine: set under `alarms.defaults` only;
one instance per collector, published under the line `SITE_LINE`."""
SITE_LINE = "_site"
"""The `line` of site-wide alarm instances (`_` cannot start a line id)."""


class KpiName(StrEnum):
    """The shift KPI a `shift_kpi_low` rule watches (ISO 22400-2 ratios)."""

    OEE = "oee"
    AVAILABILITY = "availability"
    PERFORMANCE = "performance"
    QUALITY = "quality"


class KpiWindow(StrEnum):
    """The KPI window a `coverage_low` rule reads: the collector's rolling window
    (`collector.rolling_window_s`) or the current shift."""

    ROLLING = "rolling"
    SHIFT = "shift"


STOPPED_STATES = frozenset({MachineState.STOPPED, MachineState.IDLE,
                            MachineState.SETUP, MachineState.PLANNED_STOP,
                            MachineState.OFFLINE})
"""States a `machine_stopped` rule may watch (any but running)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Percent = Annotated[float, Field(ge=0, le=100)]
Parts = Annotated[int, Field(ge=0)]


class RuleOverride(_Model):
    """The fields one level sets; a field left out keeps the level above's value. Which
    fields a rule kind takes: `FIELDS` (plant_checks refuses the others)."""

    enabled: bool | None = None
    severity: Severity | None = None
    after_s: Seconds | None = None
    """On-delay: the condition must hold this long before the alarm raises."""
    clear_after_s: Seconds | None = None
    """Off-delay: the condition must be gone this long before the alarm clears."""
    states: Annotated[list[MachineState], Field(min_length=1)] | None = None
    """machine_stopped: which states count as stopped."""
    lookback_s: Seconds | None = None
    """downtime_unclassified: events that started longer ago than this are not watched."""
    below_pct: Percent | None = None
    """coverage_low, shift_kpi_low: the condition is the value below this percentage."""
    window: KpiWindow | None = None
    """coverage_low: which KPI window's coverage."""
    kpi: KpiName | None = None
    """shift_kpi_low: which ratio."""
    after_shift_s: Seconds | None = None
    """shift_kpi_low: how far into the shift the rule starts judging."""
    min_parts: Parts | None = None
    max_parts: Parts | None = None
    """buffer_wip: the buffer's allowed level (either or both)."""
    max_lag_s: Seconds | None = None
    """collector_lag: the highest acceptable p99 end-to-end lag of a stats period."""
    min_increase: Annotated[int, Field(ge=1)] | None = None
    """dead_letters: dead letters in one stats period that count as rising."""


COMMON_FIELDS = frozenset({"enabled", "severity", "after_s", "clear_after_s"})
FIELDS: dict[RuleKind, frozenset[str]] = {
    RuleKind.MACHINE_STOPPED: frozenset({"states"}),
    RuleKind.AGENT_OFFLINE: frozenset(),
    RuleKind.DOWNTIME_UNCLASSIFIED: frozenset({"lookback_s"}),
    RuleKind.COVERAGE_LOW: frozenset({"below_pct", "window"}),
    RuleKind.SHIFT_KPI_LOW: frozenset({"below_pct", "kpi", "after_shift_s"}),
    RuleKind.BUFFER_WIP: frozenset({"min_parts", "max_parts"}),
    RuleKind.COLLECTOR_LAG: frozenset({"max_lag_s"}),
    RuleKind.DEAD_LETTERS: frozenset({"min_increase"}),
}
"""The fields each rule kind takes besides `COMMON_FIELDS`."""

RuleMap = dict[RuleKind, RuleOverride]


class Alarms(_Model):
    """`alarms:` of the plant file."""

    defaults: RuleMap = Field(default_factory=dict)
    lines: dict[Ident, RuleMap] = Field(default_factory=dict)
    machines: dict[Ident, RuleMap] = Field(default_factory=dict)
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """`/healthz` and `/metrics` of `shopfloor alarms` (alarms/status.py)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One machine's (or, for `SITE_KINDS`, the site's) effective rule of one kind.
    Fields a kind does not take keep their defaults and mean nothing for it."""

    kind: RuleKind
    enabled: bool
    severity: Severity
    after_s: float
    clear_after_s: float
    states: frozenset[MachineState] = frozenset()
    lookback_s: float = 86_400.0
    below_pct: float = 0.0
    window: KpiWindow = KpiWindow.ROLLING
    kpi: KpiName = KpiName.OEE
    after_shift_s: float = 0.0
    min_parts: int | None = None
    max_parts: int | None = None
    max_lag_s: float = 30.0
    min_increase: int = 1


def _built_in(kind: RuleKind, enabled: bool, severity: Severity, after_s: float,
              clear_after_s: float, **fields: Any) -> Rule:
    return Rule(kind, enabled, severity, after_s, clear_after_s, **fields)


BUILT_IN: dict[RuleKind, Rule] = {rule.kind: rule for rule in (
    _built_in(RuleKind.MACHINE_STOPPED, True, Severity.MEDIUM, 600.0, 30.0,
              states=frozenset({MachineState.STOPPED, MachineState.IDLE})),
    _built_in(RuleKind.AGENT_OFFLINE, True, Severity.HIGH, 60.0, 10.0),
    _built_in(RuleKind.DOWNTIME_UNCLASSIFIED, False, Severity.LOW, 900.0, 0.0,
              lookback_s=86_400.0),
    _built_in(RuleKind.COVERAGE_LOW, False, Severity.MEDIUM, 300.0, 60.0, below_pct=80.0),
    _built_in(RuleKind.SHIFT_KPI_LOW, False, Severity.MEDIUM, 0.0, 300.0, below_pct=60.0,
              after_shift_s=3600.0),
    _built_in(RuleKind.BUFFER_WIP, False, Severity.MEDIUM, 60.0, 30.0),
    _built_in(RuleKind.COLLECTOR_LAG, True, Severity.HIGH, 60.0, 60.0, max_lag_s=30.0),
    _built_in(RuleKind.DEAD_LETTERS, True, Severity.MEDIUM, 0.0, 300.0, min_increase=1),
)}
"""What a rule is when the plant file says nothing about it. The rules a plant must
choose to use are off until it does: `shift_kpi_low` and `buffer_wip` need a target /
limits; `downtime_unclassified` only makes sense where people classify stops; and
`coverage_low` would raise on every machine after a fresh start (the KPI window begins
before the first data)."""


def _apply(rule: Rule, override: RuleOverride | None) -> Rule:
    if override is None:
        return rule
    changes: dict[str, Any] = {name: value for name, value in override
                               if value is not None}
    if "states" in changes:
        changes["states"] = frozenset(changes["states"])
    return replace(rule, **changes)


def effective(alarms: Alarms, kind: RuleKind, line: str | None = None,
              machine: str | None = None) -> Rule:
    """Built-in, then `defaults`, then the line's, then the machine's fields."""
    rule = BUILT_IN[kind]
    for level in (alarms.defaults, alarms.lines.get(line or "", {}),
                  alarms.machines.get(machine or "", {})):
        rule = _apply(rule, level.get(kind))
    return rule


def site_rules(alarms: Alarms) -> dict[RuleKind, Rule]:
    """The enabled rules of the site's collectors (`SITE_KINDS`, from `defaults`)."""
    rules = {kind: effective(alarms, kind) for kind in SITE_KINDS}
    return {kind: rule for kind, rule in rules.items() if rule.enabled}


def rules_for(alarms: Alarms, line: str, machine: str) -> dict[RuleKind, Rule]:
    """The effective enabled machine rules (all but `SITE_KINDS`) of `machine` on
    `line`."""
    rules = {kind: effective(alarms, kind, line, machine)
             for kind in BUILT_IN if kind not in SITE_KINDS}
    return {kind: rule for kind, rule in rules.items() if rule.enabled}
