"""Models of the alarm routes (docs/api.md, "Alarms"): what they answer and the bodies
of the actions on an alarm."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, Field

from shopfloor.api.commands import Outcome
from shopfloor.api.models.common import PageInfo
from shopfloor.api.models.control import In
from shopfloor.shared.alarm_rules import RuleKind, Severity
from shopfloor.shared.contract import MAX_COMMENT_CHARS, MAX_SHELVE_S, AlarmAction, AlarmPayload
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


Comment = Annotated[str, Field(max_length=MAX_COMMENT_CHARS)]


class AckIn(In):
    comment: Comment = Field("", examples=["restarted the feeder"])


class ShelveIn(In):
    duration_s: float = Field(ge=1, le=MAX_SHELVE_S, allow_inf_nan=False, examples=[3600],
                              description="seconds until the alarm unshelves by itself")
    reason: Comment = Field(min_length=1, examples=["sensor being replaced"])


class UnshelveIn(In):
    comment: Comment = ""


class AlarmActionOut(BaseModel):
    """The answer to an action on an alarm: `status` done (200), rejected (409: the
    alarm's state does not allow it, `detail` says why), expired or timeout (504: the
    alarm component did not answer in time). `alarm`: the instance after the action."""

    status: Outcome = Field(examples=["done"])
    action: AlarmAction
    machine: str = Field(examples=["press1"])
    rule: RuleKind
    command_id: str
    detail: str = ""
    alarm: AlarmPayload | None = None
