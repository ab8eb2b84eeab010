"""On-delay and off-delay of one rule instance, on event time.

`observe` records that the rule's condition is (or is not) present from time `at`;
`advance` says whether, by time `now`, the alarm raised or cleared, and at which event
time: the moment the condition had held for `after_s` (or been gone for
`clear_after_s`). That time depends only on the observations, never on when `advance`
runs, so evaluating the same data twice (e.g. after a restart) gives the same
transitions at the same times.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from shopfloor.shared.alarm_rules import Rule


class Edge(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class Debounce:
    """`condition` as last observed, present or absent since `since` (event time, s);
    `active`: whether the alarm is raised."""

    condition: bool = False
    since: float = 0.0
    active: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    edge: Edge
    at: float
    """Event time of the edge: when the condition had held (or been gone) long enough."""


def observe(state: Debounce, condition: bool, at: float) -> Debounce:
    """The condition is `condition` from `at` on. A repeat of the same condition keeps
    the earlier `since`; an observation older than `since` is ignored (out of order)."""
    if condition == state.condition or at < state.since:
        return state
    return replace(state, condition=condition, since=at)


def advance(rule: Rule, state: Debounce, now: float) -> tuple[Debounce, Change | None]:
    """Whether the alarm raised or cleared by event time `now`."""
    if state.condition and not state.active:
        due = state.since + rule.after_s
        if now >= due:
            return replace(state, active=True), Change(Edge.RAISE, due)
    elif not state.condition and state.active:
        due = state.since + rule.clear_after_s
        if now >= due:
            return replace(state, active=False), Change(Edge.CLEAR, due)
    return state, None


def step(rule: Rule, state: Debounce, condition: bool,
         at: float) -> tuple[Debounce, list[Change]]:
    """Advance to `at` under the old condition, then take the new one (which may itself
    raise or clear at once when its delay is 0): the edges, in time order."""
    changes: list[Change] = []
    state, change = advance(rule, state, at)
    if change is not None:
        changes.append(change)
    state, change = advance(rule, observe(state, condition, at), at)
    if change is not None:
        changes.append(change)
    return state, changes
