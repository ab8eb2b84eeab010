"""The downtime reason tree of the plant file (`downtime:`): categories of reasons, each
reason with the loss it stands for, plant-wide with per-line additions, and the PLC reason
codes that map into it. Whole-file checks live in `plant_checks._downtime`; `tree_of`
gives the effective tree of one line (plant-wide + that line's additions).

A reason whose loss is `planned` moves the event's time to planned downtime (PDOT);
`setup` to setup (L2, AUST); `unplanned` keeps it an unplanned stop (L1). docs/operator.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shopfloor.shared.enums import MachineState

Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
UNCLASSIFIED = "unclassified"  # the reason tag of a part nobody (and no PLC code) classified
DOWNTIME_STATES = frozenset({MachineState.STOPPED, MachineState.IDLE, MachineState.OFFLINE})
"""States whose episodes are downtime events once they last the line's threshold."""


class Loss(StrEnum):
    """Which OEE loss a reason's time is: L1 unplanned stop, L2 setup, or PDOT."""

    UNPLANNED = "unplanned"
    SETUP = "setup"
    PLANNED = "planned"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reason(_Model):
    code: Code
    name: str = ""
    loss: Loss = Loss.UNPLANNED
    plc: list[str] = Field(default_factory=list,
                           description="PLC reason codes (state map `reason`) that mean it")


class Category(_Model):
    id: Code
    name: str = ""
    reasons: list[Reason] = Field(min_length=1)


class LineReasons(_Model):
    """A line's additions: more categories, and its own threshold."""

    threshold_s: Annotated[float, Field(gt=0)] | None = None
    categories: list[Category] = Field(default_factory=list)


class Downtime(_Model):
    """`downtime:` of the plant file. `threshold_s`: a stopped/idle/offline episode at
    least this long is a downtime event (default: `collector.minor_stop_s`, T_minor).
    `generic_plc_reasons`: PLC reasons that say nothing (the event starts unclassified)."""

    threshold_s: Annotated[float, Field(gt=0)] | None = None
    generic_plc_reasons: list[str] = Field(default_factory=lambda: ["other", "none"])
    categories: list[Category] = Field(default_factory=list)
    lines: dict[Code, LineReasons] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TreeReason:
    """One reason of an effective tree, with its category."""

    code: str
    name: str
    loss: Loss
    category: str
    category_name: str


@dataclass(frozen=True, slots=True)
class ReasonTree:
    """The effective tree of one line: reasons by code, PLC code -> reason code."""

    line: str
    threshold_s: float
    categories: tuple[Category, ...]
    reasons: dict[str, TreeReason]
    plc: dict[str, str]
    generic: frozenset[str]

    def initial(self, plc_reason: str | None) -> TreeReason | None:
        """The reason an event starts with: its PLC reason's mapping, unless generic."""
        if not plc_reason or plc_reason in self.generic:
            return None
        code = self.plc.get(plc_reason)
        return self.reasons.get(code) if code else None


def tree_of(downtime: Downtime, line: str, default_threshold_s: float) -> ReasonTree:
    """Plant-wide categories + `line`'s additions (a duplicate code: the first wins;
    `shopfloor check` refuses duplicates anyway)."""
    extra = downtime.lines.get(line, LineReasons())
    categories = (*downtime.categories, *extra.categories)
    reasons: dict[str, TreeReason] = {}
    plc: dict[str, str] = {}
    for category in categories:
        for reason in category.reasons:
            reasons.setdefault(reason.code, TreeReason(
                reason.code, reason.name or reason.code, reason.loss, category.id,
                category.name or category.id))
            for code in reason.plc:
                plc.setdefault(code, reason.code)
    threshold = extra.threshold_s or downtime.threshold_s or default_threshold_s
    return ReasonTree(line, threshold, tuple(categories), reasons, plc,
                      frozenset(downtime.generic_plc_reasons))


def qualifies(state: MachineState, duration_s: float, tree: ReasonTree) -> bool:
    """A downtime state lasting at least the line's threshold: a downtime event."""
    return state in DOWNTIME_STATES and duration_s >= tree.threshold_s


def event_id(machine: str, start_ms: int) -> str:
    """A downtime event's id: its machine and start (the same data, the same id)."""
    return f"{machine}:{start_ms}"
