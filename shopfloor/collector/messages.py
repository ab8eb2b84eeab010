"""Pure classification of one incoming MQTT message: a validated `ParsedMessage`, a
`Rejected` (dead letter, with a bounded reason label and a human detail), or `None` for
topics the collector deliberately ignores (commands, KPIs, dead letters)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shopfloor.shared import contract, topics
from shopfloor.shared.contract import AgentStatus, StatePayload, Telemetry
from shopfloor.shared.errors import ContractError
from shopfloor.shared.plant import Plant
from shopfloor.shared.schema import to_ms


class Kind(StrEnum):
    TELEMETRY = "telemetry"
    STATE = "state"
    STATUS = "status"


class Reason(StrEnum):
    """Dead-letter reasons (a metric label: keep the set small and fixed)."""

    TOPIC = "topic"  # not a topic of the contract
    PAYLOAD = "payload"  # not JSON, or fails the contract model
    UNKNOWN_SITE = "unknown_site"
    UNKNOWN_MACHINE = "unknown_machine"
    WRONG_LINE = "wrong_line"  # machine exists, but on another line
    UNKNOWN_AGENT = "unknown_agent"
    POINT = "point"  # some point values do not fit the plant's point (rest stored)
    FUTURE_TS = "future_ts"  # telemetry ts beyond admission.max_ahead_s (shared.admission)
    OLD_TS = "old_ts"  # telemetry ts older than admission.max_age_s
    REJECTED_BY_DATABASE = "rejected_by_database"


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A validated message. `line`/`machine` are set for telemetry and state, `agent`
    for agent status. `duplicate` is True for telemetry whose seq was seen before.
    `ts_ms` is the telemetry's `ts` in ms since the epoch (computed once: converting an
    aware datetime is one of the costlier steps per message)."""

    kind: Kind
    site: str
    payload: Telemetry | StatePayload | AgentStatus
    line: str = ""
    machine: str = ""
    agent: str = ""
    duplicate: bool = False
    ts_ms: int = 0  # set from the payload for telemetry

    def __post_init__(self) -> None:
        if self.kind is Kind.TELEMETRY and not self.ts_ms:
            assert isinstance(self.payload, Telemetry)
            object.__setattr__(self, "ts_ms", to_ms(self.payload.ts))


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    detail: str


_MODELS: dict[Kind, type[contract.Payload]] = {
    Kind.TELEMETRY: Telemetry,
    Kind.STATE: StatePayload,
    Kind.STATUS: AgentStatus,
}
_IGNORED_KINDS = {topics.CMD, topics.CMD_RESULT, topics.KPI}


def _status_agent(parts: list[str]) -> str | None:
    """Agent id of `shopfloor/v1/{site}/edge/{agent}/status`, else None."""
    if len(parts) == 6 and parts[3] == "edge" and parts[5] == topics.STATUS:
        return parts[4]
    return None


@dataclass(frozen=True, slots=True)
class Route:
    """Where a valid topic leads: what the topic alone says about a message."""

    kind: Kind
    site: str
    line: str = ""
    machine: str = ""
    agent: str = ""


def classify(plant: Plant, topic: str, raw: bytes) -> ParsedMessage | Rejected | None:
    """Validate topic and payload against the contract and the plant."""
    where = route(plant, topic)
    return parse(where, raw) if isinstance(where, Route) else where


def route(plant: Plant, topic: str) -> Route | Rejected | None:
    """The topic's part of `classify`: a Route, a Rejected, or None (ignored topic)."""
    parts = topic.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != topics.ROOT:
        return Rejected(Reason.TOPIC, f"not a {topics.ROOT} topic")
    if parts[3] == topics.DEAD_LETTER:
        return None  # our own (or another component's) dead letters
    if parts[2] != plant.site.id:
        return Rejected(Reason.UNKNOWN_SITE, f"site {parts[2]!r} is not {plant.site.id!r}")
    agent = _status_agent(parts)
    if agent is not None:
        if plant.agents and plant.agent(agent) is None:
            return Rejected(Reason.UNKNOWN_AGENT, f"agent {agent!r} is not in the plant")
        return Route(Kind.STATUS, plant.site.id, agent=agent)
    where = topics.parse_machine_topic(topic)
    if where is None:
        return Rejected(Reason.TOPIC, "not a machine, status or dead-letter topic")
    if where.kind in _IGNORED_KINDS:
        return None
    machine = plant.machines.get(where.machine)
    if machine is None:
        return Rejected(Reason.UNKNOWN_MACHINE, f"machine {where.machine!r} is not in the plant")
    if machine.line != where.line:
        return Rejected(
            Reason.WRONG_LINE, f"machine {where.machine!r} is on line {machine.line!r}"
        )
    return Route(Kind(where.kind), where.site, line=where.line, machine=where.machine)


def parse(where: Route, raw: bytes) -> ParsedMessage | Rejected:
    """The payload's part of `classify`, for a topic already routed."""
    try:
        payload = contract.parse(_MODELS[where.kind], raw)
    except ContractError as exc:
        return Rejected(Reason.PAYLOAD, str(exc))
    return ParsedMessage(where.kind, where.site, payload, line=where.line,
                         machine=where.machine, agent=where.agent)


class Router:
    """`classify` with the routes of valid topics remembered: a plant has a bounded set
    of them (machines x kinds, agents), and the topic checks are a good part of the
    per-message cost. Rejected topics are never remembered (a hostile publisher could
    invent any number); at most `MAX_ROUTES` are."""

    MAX_ROUTES = 100_000

    def __init__(self, plant: Plant) -> None:
        self._plant = plant
        self._routes: dict[str, Route] = {}

    def classify(self, topic: str, raw: bytes) -> ParsedMessage | Rejected | None:
        where = self._routes.get(topic)
        if where is None:
            found = route(self._plant, topic)
            if not isinstance(found, Route):
                return found
            where = found
            if len(self._routes) < self.MAX_ROUTES:
                self._routes[topic] = where
        return parse(where, raw)
