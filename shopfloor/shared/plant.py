"""The plant file's typed model: site, broker, database, shift calendar, lines, machines
(connection and points of a field protocol, state and counter points, products), edge
agents, API keys. What a connection and a point hold beyond the common part is the
protocol's (`shopfloor.shared.protocols`, keyed by `protocol:`, `modbus` by default).

Field validators check one value; `shopfloor.shared.plant_checks` checks the whole file
(references between sections, overlapping registers). Load a file with
`shopfloor.shared.loader.load_plant`, which reports every error with its path.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from shopfloor.shared import protocols
from shopfloor.shared.alarm_rules import Alarms
from shopfloor.shared.enums import DatabaseApi, MachineState, QueueFullPolicy
from shopfloor.shared.notifications import Notifications
from shopfloor.shared.protocols.base import (
    Connection,
    Ident,
    Model,
    Point,
    Port,
    PositiveSeconds,
)
from shopfloor.shared.reasons import Downtime

if TYPE_CHECKING:
    AnyConnection = Connection
    AnyPoint = Point
else:
    AnyConnection = protocols.connection_union()
    """A machine's connection: the model of its `protocol:` (shared/protocols/)."""
    AnyPoint = protocols.point_union()
    """A point: the model of its machine's protocol."""

class Site(Model):
    id: Ident
    name: str = ""
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Berlin)") from exc
    return value


class Broker(Model):
    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Port = 1883
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    tls: bool = False
    tls_ca_file: str | None = None
    """PEM file of the CA(s) the broker's certificate must chain to (a plant's own CA);
    unset: the system's trust store. The broker's host name (or IP) must be in it."""
    tls_cert_file: str | None = None
    """This component's certificate (PEM), for a broker that requires client certificates."""
    tls_key_file: str | None = None
    """Its private key (PEM, unencrypted)."""

    @model_validator(mode="after")
    def _tls_files_need_tls(self) -> Broker:
        if not self.tls and (self.tls_ca_file or self.tls_cert_file or self.tls_key_file):
            raise ValueError("tls_ca_file, tls_cert_file and tls_key_file need `tls: true`")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together (client certificate)")
        return self


class Database(Model):
    """InfluxDB. `api: auto` picks v1 (`/write`) or v2 (`/api/v2/write`) from `/ping`."""

    url: str = "http://127.0.0.1:8086"
    api: DatabaseApi = DatabaseApi.AUTO
    database: Ident = "shopfloor"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    org: str | None = None
    bucket: str | None = None
    timeout_s: PositiveSeconds = 10.0


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


ALL_DAYS = tuple(Weekday)


class Break(Model):
    """Planned downtime inside a shift, local wall-clock times."""

    start: dt.time
    end: dt.time


class Shift(Model):
    """A recurring shift in local time; `end <= start` means it ends the next day. An
    instance belongs to the production date (and weekday in `days`) on which it starts."""

    name: Ident
    start: dt.time
    end: dt.time
    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS))
    breaks: list[Break] = Field(default_factory=list)


class Calendar(Model):
    timezone: str | None = None
    shifts: list[Shift] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)


class StateCode(Model):
    state: MachineState
    reason: str | None = None


class StateMap(Model):
    """Which point holds the machine state, and what its codes mean."""

    point: Ident
    codes: dict[int, StateCode]
    unmapped: StateCode = StateCode(state=MachineState.STOPPED, reason="unmapped_code")


class Counters(Model):
    """Cumulative counters (points of an unsigned integer type; width from the type)."""

    total: Ident
    reject: Ident | None = None


class Product(Model):
    id: Ident
    code: Annotated[int, Field(ge=0)]
    ideal_cycle_time_s: PositiveSeconds
    name: str = ""


class Control(Model):
    """Points the control actions write. Each must be a writable point of the machine."""

    run: Ident | None = None
    speed: Ident | None = None
    alarm_ack: Ident | None = None
    product: Ident | None = None
    maintenance: Ident | None = None
    work_order: Ident | None = None


class Machine(Model):
    """A machine: its line, how to reach it (`connection`, of any field protocol) and its
    points (each of the connection's protocol: `protocol:` may be left out)."""

    line: Ident
    name: str = ""
    connection: AnyConnection
    poll_interval_s: PositiveSeconds = 1.0
    points: list[AnyPoint] = Field(min_length=1)
    state: StateMap | None = None
    counters: Counters | None = None
    products: list[Product] = Field(default_factory=list)
    control: Control = Control()

    @model_validator(mode="before")
    @classmethod
    def _points_speak_the_connection(cls, data: Any) -> Any:
        """A point that names no protocol has its connection's (new dicts: the YAML
        data may share one register map between machines)."""
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            return data
        protocol = protocols.protocol_of(data.get("connection"))
        points = [
            {"protocol": protocol, **p} if isinstance(p, dict) and "protocol" not in p else p
            for p in data["points"]
        ]
        return {**data, "points": points}

    @model_validator(mode="after")
    def _one_protocol(self) -> Machine:
        for i, point in enumerate(self.points):
            if point.protocol != self.connection.protocol:
                raise ValueError(
                    f"points[{i}] ({point.name}) is a {point.protocol} point; this machine's "
                    f"connection speaks {self.connection.protocol}"
                )
        return self

    @field_validator("points", "state", "counters", "products", "control", mode="wrap")
    @classmethod
    def _shared(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        """Machines of one model have the same register map (and state codes, counters,
        products, control points): with a `points` cache in the validation context
        (`loader.parse_plant` passes one), an identical one is validated once and its
        (frozen) models shared — ~30 KB per machine of 20 points, and ~10 KB more for
        the rest, otherwise, which counts at thousands of machines in one edge agent."""
        cache = info.context.get("points") if isinstance(info.context, dict) else None
        if cache is None or not isinstance(value, list | dict):
            return handler(value)
        key = f"{info.field_name}:{json.dumps(value, sort_keys=True, default=repr)}"
        found = cache.get(key)
        if found is None:
            found = cache[key] = handler(value)  # an invalid one raises: never cached
        return list(found) if isinstance(found, list) else found

    def point(self, name: str) -> Point | None:
        return next((p for p in self.points if p.name == name), None)

    def interval_of(self, point: Point) -> float:
        return point.poll_interval_s or self.poll_interval_s


class Line(Model):
    """Stations are machine ids in flow order (first = infeed, last = outfeed)."""

    id: Ident
    name: str = ""
    stations: list[Ident] = Field(min_length=1)
    buffer_capacity: dict[Ident, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


class Queue(Model):
    """The edge's durable outbox. When it holds `max_samples`, `when_full` decides."""

    path: str | None = None
    max_samples: Annotated[int, Field(ge=100)] = 1_000_000
    when_full: QueueFullPolicy = QueueFullPolicy.DROP_OLDEST
    max_bytes: Annotated[int, Field(ge=65_536)] | None = None
    """Cap on the outbox file's size; reaching it is handled like a full disk."""


class Agent(Model):
    id: Ident
    machines: list[Ident] = Field(min_length=1)
    state_dir: str | None = None
    metrics_port: Port | None = None
    queue: Queue = Queue()
    offline_after_failures: Annotated[int, Field(ge=1)] = 3
    max_read_registers: Annotated[int, Field(ge=1, le=125)] = 125
    max_read_gap: Annotated[int, Field(ge=0, le=125)] = 8
    backoff_max_s: PositiveSeconds = 30.0
    publish_inflight: Annotated[int, Field(ge=1, le=1000)] = 50
    status_period_s: PositiveSeconds = 10.0
    """How often the agent repeats its online status with its outbox depth."""


class Collector(Model):
    """Collector settings. `topic_filter` shards a plant across several collectors."""

    client_id: Ident = "shopfloor-collector"
    topic_filter: str | None = None
    session_expiry_s: Annotated[int, Field(ge=0)] = 7 * 24 * 3600
    batch_max_values: Annotated[int, Field(ge=1)] = 20_000
    batch_max_s: PositiveSeconds = 0.2
    metrics_port: Port | None = None
    kpi_period_s: PositiveSeconds = 10.0
    rolling_window_s: PositiveSeconds = 3600.0
    lateness_s: PositiveSeconds = 48 * 3600.0
    minor_stop_s: PositiveSeconds = 120.0  # OEE T_minor: shorter stops are minor (L3)
    startup_s: PositiveSeconds = 600.0  # running time after a setup whose scrap is L6
    kpi_max_raw_s: PositiveSeconds = 2 * 86_400.0
    """KPI work bound: raw telemetry one request may compute per machine (docs/oee.md)."""
    kpi_max_wip_window_s: PositiveSeconds = 31 * 86_400.0
    """KPI work bound: the longest WIP window (WIP is computed per minute)."""
    stats_period_s: PositiveSeconds | None = 10.0  # collector_stats points; None: off


class Admission(Model):
    """Which telemetry every component takes in (`shopfloor.shared.admission`): a sample
    stamped more than `max_ahead_s` ahead of the receiver's clock, or more than
    `max_age_s` behind it, is refused (dead-lettered by the collector, counted by all)."""

    max_ahead_s: Annotated[float, Field(ge=0)] = 300.0
    max_age_s: PositiveSeconds = 30 * 86400.0


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    MAINTENANCE = "maintenance"
    ADMIN = "admin"


class ApiKey(Model):
    """An API key, stored only as `sha256:<hex>` of the secret."""

    name: Ident
    hash: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    role: Role
    lines: list[Ident] | None = None


class Api(Model):
    host: str = "127.0.0.1"
    port: Port = 8000
    dev_mode: bool = False
    keys: list[ApiKey] = Field(default_factory=list)
    command_timeout_s: PositiveSeconds = 5.0
    state_dir: str | None = None
    """Idempotency-Key answers survive restarts here (default shopfloor-state/api)."""
    mqtt_client_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")] | None = None
    """The API's MQTT client id, the key of its persistent session (default
    shopfloor-api-{site}-{hostname}-{port}); two API replicas must not share one."""
    mqtt_session_expiry_s: Annotated[int, Field(ge=0, le=2**32 - 1)] = 3600
    """How long the broker keeps the session (and queues results) while the API is away."""
    stocktake_max_age_s: PositiveSeconds = 31 * 86_400.0
    """A stocktake's `at` may lie at most this far in the past (else 422)."""
    stocktake_max_ahead_s: PositiveSeconds = 300.0
    """... and at most this far in the future (clock skew)."""
    max_connections: Annotated[int, Field(ge=1)] = 1000
    """Open HTTP connections at most (lowered to what the fd limit allows)."""
    request_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """A connection must deliver a whole request within this time, else it is closed."""
    keep_alive_s: Annotated[int, Field(ge=1, le=3600)] = 5
    """An idle keep-alive connection is closed after this many seconds."""
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    """A larger request body is refused with 413 (docs/api.md, "Limits")."""
    max_raw_window_s: PositiveSeconds = 86400.0
    """Longest window of raw (not aggregated) history one request may ask for."""
    query_timeout_s: PositiveSeconds = 30.0
    """Longest an on-demand read (database query, KPI computation) may run: then 503."""
    max_concurrent_reads: Annotated[int, Field(ge=1, le=64)] = 4
    """On-demand reads running at once; more wait up to 1 s for a slot, then 503."""


class Plant(Model):
    """The whole plant file."""

    version: Literal[1] = 1
    site: Site
    broker: Broker = Broker()
    database: Database = Database()
    calendar: Calendar = Calendar()
    lines: list[Line] = Field(min_length=1)
    machines: dict[Ident, Machine] = Field(min_length=1)
    agents: list[Agent] = Field(default_factory=list)
    collector: Collector = Collector()
    api: Api = Api()
    admission: Admission = Admission()
    downtime: Downtime = Downtime()
    alarms: Alarms = Alarms()
    notifications: Notifications = Notifications()

    def agent(self, agent_id: str) -> Agent | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def line(self, line_id: str) -> Line | None:
        return next((line for line in self.lines if line.id == line_id), None)

    @property
    def timezone(self) -> str:
        return self.calendar.timezone or self.site.timezone
