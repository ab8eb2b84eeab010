"""OPC UA in the plant file: a machine's `connection` with `protocol: opcua` (endpoint,
security, trust, user, subscription or polling) and a point's node (`node_id` or
`browse_path`). See docs/plant-file.md, "OPC UA machines"."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shopfloor.shared.enums import DataType
from shopfloor.shared.protocols.base import Connection, Point, PositiveSeconds


class SecurityPolicy(StrEnum):
    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"


class SecurityMode(StrEnum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class ReadMode(StrEnum):
    """subscription: the server reports changes (monitored items); polling: the edge
    reads every point at its interval (one batched Read per interval group)."""

    SUBSCRIPTION = "subscription"
    POLLING = "polling"


class DeadbandKind(StrEnum):
    """How a point's `deadband` is meant in subscription mode (the server filters)."""

    ABSOLUTE = "absolute"
    PERCENT = "percent"


NODE_ID = re.compile(r"^(ns=\d{1,5};)?(i=\d{1,10}|s=.+|g=[0-9A-Fa-f-]{36}|b=[A-Za-z0-9+/=]+)$")
"""An OPC UA NodeId in its text form: `ns=2;s=Press1.State`, `i=2258`, `ns=3;g=...`."""
BROWSE_STEP = re.compile(r"^\d{1,5}:[^/]+$")
"""One step of a browse path: `namespace index:browse name`, e.g. `2:Press1`."""


def check_node_id(value: str) -> str:
    if not NODE_ID.match(value):
        raise ValueError(f"{value!r} is not a NodeId (e.g. ns=2;s=Press1.State or i=2258)")
    return value


def check_browse_path(value: str) -> str:
    """A path from the Objects folder, steps `ns:Name` separated by `/`."""
    steps = value.strip("/").split("/")
    bad = [s for s in steps if not BROWSE_STEP.match(s)]
    if not value.strip("/") or bad:
        raise ValueError(
            f"{value!r} is not a browse path: steps 'ns:Name' from the Objects folder, "
            "separated by / (e.g. 2:Line1/2:Press1/2:State)"
        )
    return value


def browse_steps(path: str) -> list[str]:
    return path.strip("/").split("/")


class OpcUaConnection(Connection):
    """An OPC UA server endpoint. `certificate`/`private_key` (PEM or DER files) are the
    client's application instance certificate, needed by every policy but None.
    A server's certificate is trusted when it (or a CA that signed it) is in
    `trust_dir`; `trust_any_server: true` accepts any (encrypted, not authenticated)."""

    protocol: Literal["opcua"] = "opcua"
    endpoint: Annotated[str, Field(pattern=r"^opc\.tcp://[^\s/]+(/\S*)?$")]
    security_policy: SecurityPolicy = SecurityPolicy.NONE
    security_mode: SecurityMode = SecurityMode.NONE
    certificate: str | None = None
    private_key: str | None = None
    trust_dir: str | None = None
    trust_any_server: bool = False
    application_uri: str = "urn:shopfloor:edge"
    """Must match the URI in the client certificate's subjectAltName."""
    username: str | None = None
    password: SecretStr | None = None
    mode: ReadMode = ReadMode.SUBSCRIPTION
    publishing_interval_s: PositiveSeconds | None = None
    """Subscription: how often the server sends what changed (default: the machine's
    `poll_interval_s`). Shorter means less delay from a change to its sample; an idle
    machine still gives one sample per `poll_interval_s` (a keep-alive)."""
    sampling_interval_s: Annotated[float, Field(ge=0)] | None = None
    """Server-side sampling of the monitored items (default: the point's interval)."""
    queue_size: Annotated[int, Field(ge=1, le=10_000)] = 10
    """Values the server keeps per monitored item between two publishes."""
    deadband: DeadbandKind = DeadbandKind.ABSOLUTE
    timeout_s: PositiveSeconds = 4.0
    """Longest wait for one request's answer (and 3x that for connecting)."""

    @field_validator("endpoint")
    @classmethod
    def _has_port(cls, value: str) -> str:
        host_port = value.removeprefix("opc.tcp://").split("/", 1)[0]
        if not re.match(r"^.+:\d{1,5}$", host_port):
            raise ValueError(f"{value!r} needs host:port (e.g. opc.tcp://10.0.0.5:4840)")
        return value

    @model_validator(mode="after")
    def _security(self) -> OpcUaConnection:
        none_policy = self.security_policy is SecurityPolicy.NONE
        if none_policy != (self.security_mode is SecurityMode.NONE):
            raise ValueError(
                f"security_policy {self.security_policy} goes with security_mode "
                f"{'None' if none_policy else 'Sign or SignAndEncrypt'}, not {self.security_mode}"
            )
        if not none_policy and not (self.certificate and self.private_key):
            raise ValueError(f"security_policy {self.security_policy} needs the client's "
                             "certificate and private_key files")
        if not none_policy and not self.trust_dir and not self.trust_any_server:
            raise ValueError("a secure endpoint needs trust_dir (the trusted server "
                             "certificates) or trust_any_server: true")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.mode is ReadMode.POLLING and self.deadband is DeadbandKind.PERCENT:
            raise ValueError("deadband: percent needs the server (mode: subscription)")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.endpoint.removeprefix("opc.tcp://").split("/", 1)[0].rpartition(":")
        return host.strip("[]"), int(port)


class OpcUaPoint(Point):
    """A point that is an OPC UA variable node: its NodeId (`node_id`) or its browse path
    from the Objects folder (`browse_path`, resolved when the edge connects). `type` is
    the node's built-in type; an enumeration node reads as `int32`; arrays are refused."""

    protocol: Literal["opcua"] = "opcua"
    node_id: str | None = None
    browse_path: str | None = None

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str | None) -> str | None:
        return None if value is None else check_node_id(value)

    @field_validator("browse_path")
    @classmethod
    def _browse_path(cls, value: str | None) -> str | None:
        return None if value is None else check_browse_path(value)

    @model_validator(mode="after")
    def _one_node(self) -> OpcUaPoint:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("an OPC UA point needs node_id or browse_path (one of them)")
        if self.type is DataType.DATETIME and self.writable:
            raise ValueError("a datetime point cannot be writable")
        return self

    @property
    def node(self) -> str:
        """The node as the plant file names it (NodeId or browse path)."""
        return self.node_id or self.browse_path or ""

    @property
    def max_chars(self) -> int | None:
        """An OPC UA String is as long as it is; `length`, if given, bounds writes."""
        return self.length


VARIANT_OF = {
    "bool": "Boolean",
    "int16": "Int16",
    "uint16": "UInt16",
    "int32": "Int32",
    "uint32": "UInt32",
    "int64": "Int64",
    "uint64": "UInt64",
    "float32": "Float",
    "float64": "Double",
    "string": "String",
    "datetime": "DateTime",
}
"""A point's `type` -> the OPC UA built-in type (ua.VariantType name) its node holds.
An enumeration node (Int32 on the wire) is read as `int32`."""
