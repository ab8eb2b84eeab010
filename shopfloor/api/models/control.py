"""Control requests and their answers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shopfloor.api.commands import CommandRecord, Outcome
from shopfloor.api.models.common import AwareTime, BoundedInt, BoundedValue
from shopfloor.shared.contract import PointValue

MAX_CODE = 2**63 - 1


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SetpointIn(In):
    point: str = Field(examples=["speed_pct"], max_length=64)
    value: BoundedValue = Field(examples=[95])


class ChangeoverIn(In):
    product: Annotated[str, Field(max_length=64)] | Annotated[int, Field(ge=0, le=MAX_CODE)] = (
        Field(description="product id from the plant file, or its code", examples=["B"]))
    work_order: str | None = Field(None, max_length=250, examples=["WO-4711"])


class MaintenanceIn(In):
    on: StrictBool = Field(examples=[True])


class StocktakeIn(In):
    """A physical count of a line's WIP: the anchor the WIP engine counts from."""

    count: int = Field(ge=0, le=10_000_000, examples=[42],
                       description="parts on the whole line")
    buffers: dict[Annotated[str, Field(max_length=64)], BoundedInt] = Field(
        default_factory=dict, max_length=1000, examples=[{"press1": 20}],
        description="parts in the buffer after each station")
    at: AwareTime | None = Field(None, description="when counted (default: now)")


class CommandOut(BaseModel):
    """One command sent to the edge and what became of it."""

    id: str = Field(examples=["5f0c2d3e9b8a4c1d8e7f6a5b4c3d2e1f"])
    machine: str = Field(examples=["press1"])
    action: str = Field(examples=["setpoint"])
    point: str = Field(examples=["speed_pct"])
    value: PointValue = Field(examples=[95])
    status: Outcome = Field(examples=["done"])
    detail: str = ""
    readback: PointValue | None = Field(None, examples=[95])
    requested_by: str = Field(examples=["mes"])
    requested_at: dt.datetime
    expires_at: dt.datetime
    completed_at: dt.datetime | None = None
    late: bool = Field(False, description="the result arrived after the API timed out")


class ControlOut(BaseModel):
    """The answer to a control action. `status` is the first non-done command's outcome
    (done when every command is done); HTTP status: done 200, rejected 409, failed 502,
    expired or timeout 504."""

    status: Outcome = Field(examples=["done"])
    action: str = Field(examples=["setpoint"])
    machine: str = Field(examples=["press1"])
    detail: str = ""
    commands: list[CommandOut]


class StocktakeOut(BaseModel):
    status: Annotated[str, Field(examples=["done"])] = "done"
    line: str = Field(examples=["line1"])
    count: int
    buffers: dict[str, int]
    at: dt.datetime


def command_out(record: CommandRecord) -> CommandOut:
    return CommandOut(
        id=record.id, machine=record.machine, action=record.action, point=record.point,
        value=record.value, status=record.outcome, detail=record.detail,
        readback=record.readback, requested_by=record.requested_by,
        requested_at=record.requested_at, expires_at=record.expires_at,
        completed_at=record.completed_at, late=record.late,
    )
