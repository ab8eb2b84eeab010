"""Output models of the alarm routes (docs/api.md, "Alarms")."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from shopfloor.api.models.common import PageInfo
from shopfloor.shared.alarm_rules import RuleKind, Severity
from shopfloor.shared.enums import AlarmState, EventKind


class AlarmTransitionOut(BaseModel):
    """One lifecycle transition of an alarm instance (machine x rule)."""

    time: dt.datetime
    line: str
    machine: str
    rule: RuleKind
    severity: Severity
    kind: EventKind
    from_state: AlarmState
    to_state: AlarmState
    by: str
    comment: str = ""


class AlarmHistoryPage(BaseModel):
    items: list[AlarmTransitionOut]
    page: PageInfo


class AlarmsOut(BaseModel):
    """Every alarm instance not in `normal`, each with the transition that put it in its
    state (`to_state` is its state)."""

    items: list[AlarmTransitionOut]
