"""MQTT payloads (JSON, schema version `v`). One model per topic kind; edge, collector and
API validate with these. Times are ISO 8601 UTC (`2026-11-25T20:00:00.123Z`)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shopfloor.shared.alarm_rules import RuleKind, Severity
from shopfloor.shared.enums import AlarmState, ControlAction, EventKind, MachineState
from shopfloor.shared.errors import ContractError
from shopfloor.shared.plant import Role
from shopfloor.shared.protocols.base import PointValue

SCHEMA_VERSION: Literal[1] = 1
MAINTENANCE_REASON = "maintenance"
"""The reason of the planned stop that is maintenance mode (machine state)."""
MAX_PAYLOAD_BYTES = 256 * 1024

Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]
MAX_PROBLEMS, MAX_PROBLEM_CHARS = 50, 500
Problem = Annotated[str, Field(max_length=MAX_PROBLEM_CHARS)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Telemetry(Payload):
    """One poll of one machine. `seq` grows by one per machine stream, across restarts.
    A point in `quality` ("bad") has no trustworthy value in this sample. `epoch`
    (optional) names the stream: an edge that starts a new outbox (a new or emptied
    file) starts a new epoch with seq from 0, and the collector begins fresh accounting
    for it. Compared for equality only."""

    ts: AwareDatetime
    seq: Seq
    epoch: Seq | None = None
    values: dict[str, PointValue] = Field(default_factory=dict)
    quality: dict[str, Literal["bad"]] = Field(default_factory=dict)


class StatePayload(Payload):
    """Current machine state (retained). `since` is when this state began (event time)."""

    ts: AwareDatetime
    state: MachineState
    reason: str | None = None
    code: int | None = None
    product: str | None = None
    work_order: str | None = None
    since: AwareDatetime

    @property
    def maintenance(self) -> bool:
        """Maintenance mode as the state shows it: a planned stop with reason
        `maintenance` (what the maintenance action's point maps to)."""
        return self.state is MachineState.PLANNED_STOP and self.reason == MAINTENANCE_REASON


class Action(StrEnum):
    WRITE = "write"


class Command(Payload):
    """A write the API asks the edge to make. Refused when expired or its id was seen."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    action: Action = Action.WRITE
    point: str
    value: PointValue
    expires_at: AwareDatetime
    requested_by: str = ""
    control_action: ControlAction = ControlAction.SETPOINT
    """The API action this write is for: the edge applies shared.control_rules to it."""
    role: Role | None = None
    """The requester's role; the edge refuses a command without one."""


class CommandStatus(StrEnum):
    DONE = "done"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"


class CommandResult(Payload):
    id: str
    status: CommandStatus
    detail: str = ""
    readback: PointValue | None = None
    ts: AwareDatetime


class AgentStatus(Payload):
    """Birth (online, retained), repeated every status period while connected with the
    outbox depth (samples not yet acknowledged by the broker), the overload state and,
    while unhealthy, its `problems` (both also published at once when they change); last
    will (online: false)."""

    online: bool
    agent: str
    ts: AwareDatetime | None = None
    machines: list[str] = Field(default_factory=list)
    version: str | None = None
    queue_depth: Annotated[int, Field(ge=0)] | None = None
    overloaded: bool | None = None
    """True while the agent sheds polls because it cannot make them all (docs/edge.md)."""
    polls_skipped: Annotated[int, Field(ge=0)] | None = None
    """Scheduled polls not made since the agent started (shed or late)."""
    problems: Annotated[list[Problem], Field(max_length=MAX_PROBLEMS)] | None = None
    """Present while the agent is unhealthy: one line per reason (an outbox it cannot
    write, a task that crashed recently)."""


class AlarmTransition(Payload):
    """One lifecycle transition of an alarm instance: what, when (event time), who."""

    kind: EventKind
    at: AwareDatetime
    by: str
    from_state: AlarmState
    to_state: AlarmState
    comment: str = ""
    command_id: str | None = None
    """The person's action (`AlarmCommand.id`) that made it; absent for the engine's."""


class AlarmPayload(Payload):
    """The state of one alarm instance (retained on `.../{machine}/alarm/{rule}`), with its
    last transition. `condition`, `condition_since` and `raised` are the rule engine's
    own state (the condition as last seen and since when; whether the on-delay has
    passed): the engine restores itself from these after a restart."""

    site: str
    line: str
    machine: str
    rule: RuleKind
    severity: Severity
    state: AlarmState
    condition: bool
    condition_since: AwareDatetime
    raised: bool
    shelved_until: AwareDatetime | None = None
    last: AlarmTransition | None = None
    last_command_id: str | None = None
    """The last person's action applied to the instance (its `AlarmCommand.id`)."""
    ts: AwareDatetime


CommandId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
MAX_COMMENT_CHARS = 500
MAX_SHELVE_S = 7 * 86_400.0


class AlarmAction(StrEnum):
    """What a person does to an alarm instance (docs/alarms.md, "Actions")."""

    ACK = "ack"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"


class AlarmCommand(Payload):
    """A person's action on one alarm instance, from the API to the alarm component on
    `shopfloor/v1/{site}/alarms/cmd`. Applied at most once per id; refused when expired.
    `comment`: the ack's comment or the shelve's reason; `shelve_s`: SHELVE only."""

    id: CommandId
    action: AlarmAction
    machine: Annotated[str, Field(min_length=1, max_length=128)]
    """A machine id, or a collector's for its site-wide alarms (line `_site`)."""
    rule: RuleKind
    comment: Annotated[str, Field(max_length=MAX_COMMENT_CHARS)] = ""
    shelve_s: Annotated[float, Field(gt=0, le=MAX_SHELVE_S)] | None = None
    requested_by: Annotated[str, Field(min_length=1, max_length=64)]
    role: Role
    expires_at: AwareDatetime


class AlarmCommandResult(Payload):
    """The alarm component's answer on `shopfloor/v1/{site}/alarms/cmd/result`. `alarm`:
    the instance after the action (when the instance exists)."""

    id: CommandId
    status: CommandStatus
    detail: str = ""
    alarm: AlarmPayload | None = None
    ts: AwareDatetime


class DeadLetter(Payload):
    topic: str
    reason: str
    payload: str
    ts: AwareDatetime


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse(model: type[BaseModel], raw: bytes | str) -> Any:
    """Validate a JSON payload (a `Payload`, or a reader's view of one); ContractError
    with a short reason on any problem."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(raw)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise ContractError(f"{model.__name__}: {where}: {first['msg']}") from None
    except ValueError as exc:  # invalid UTF-8 and similar
        raise ContractError(f"{model.__name__}: {exc}") from None
