"""Alarm notifications of the plant file (`notifications:`): webhook targets (URL, the
environment variable holding the HMAC secret, which severities / lines / rules they
take) and escalations (an alarm still unacknowledged `after_s` after it raised notifies
another target). Whole-file checks: `check_notifications`. docs/alarms.md, "Webhooks".

Secrets follow the project's rule for credentials: never in the plant file. A target
names the environment variable that holds its secret (`secret_env`), the way broker and
database credentials come from `SHOPFLOOR_BROKER_PASSWORD` and the like.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shopfloor.shared.alarm_rules import Ident, RuleKind, Severity

if TYPE_CHECKING:
    from shopfloor.shared.plant import Plant

EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
MIN_SECRET_CHARS = 16
"""A webhook secret shorter than this is refused at start (a placeholder, not a key)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(_Model):
    """Which alarms: each list left out (or null) means all."""

    severities: Annotated[list[Severity], Field(min_length=1)] | None = None
    lines: Annotated[list[Ident], Field(min_length=1)] | None = None
    rules: Annotated[list[RuleKind], Field(min_length=1)] | None = None

    def matches(self, severity: str, line: str, rule: str) -> bool:
        return all(allowed is None or value in allowed for allowed, value in (
            (self.severities, severity), (self.lines, line), (self.rules, rule)))


class Webhook(Filter):
    """One receiver. Every alarm transition that passes the filter is POSTed to `url`,
    signed with HMAC-SHA256 under the secret in the environment variable `secret_env`."""

    id: Ident
    url: str
    secret_env: EnvName
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    """Bound of one delivery attempt as a whole (connect, send, the answer's head)."""
    max_in_flight: Annotated[int, Field(ge=1, le=32)] = 4
    """Notifications of different alarm instances sent at once; 1: the whole stream in
    order (one instance's notifications are always in order)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # Imported here, not at the top: httpx (with rich and pygments) costs ~6 MB, and
        # every component imports this module with the plant model; only plant files
        # with webhooks need it, and the edge agent validates its plant in a child.
        import httpx  # noqa: PLC0415

        try:
            parts = urlsplit(value)
            _ = parts.port  # a port that is not one raises here
            httpx.URL(value)  # what the sender will make of it
        except (ValueError, httpx.InvalidURL) as exc:
            raise ValueError(f"{value!r} is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname \
                or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL: the secret goes in secret_env")
        return value


class Escalation(Filter):
    """An alarm that passes the filter and is still unacknowledged `after_s` after it
    raised notifies the target `to` (once per raise)."""

    after_s: Annotated[float, Field(gt=0, le=7 * 86_400)]
    to: Ident


class Notifications(_Model):
    """`notifications:` of the plant file."""

    webhooks: list[Webhook] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    state_dir: str | None = None
    """The durable queue lives here (default shopfloor-state/alarms)."""
    max_bytes: Annotated[int, Field(ge=65_536)] = 64 * 1024 * 1024
    """Cap on the queue file's size."""
    retry_max_s: Annotated[float, Field(ge=0.5, le=3600)] = 300.0
    """Longest wait between two attempts of one notification (the shared backoff's cap)."""
    dead_letter_after_s: Annotated[float, Field(gt=0)] = 3 * 86_400.0
    """A notification not delivered this long after it was queued is a dead letter."""
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """The alarm component's /metrics and /healthz (queue depth, dead letters)."""

    def targets_for(self, severity: str, line: str, rule: str) -> list[Webhook]:
        return [w for w in self.webhooks if w.matches(severity, line, rule)]


def check_notifications(plant: Plant) -> Iterator[tuple[str, str]]:
    """Ids unique, escalations name a webhook, filters name lines that exist."""
    notes = plant.notifications
    ids = [w.id for w in notes.webhooks]
    for value, n in Tally(ids).items():
        if n > 1:
            yield "notifications.webhooks", f"webhook id {value!r} appears {n} times"
    line_ids = {line.id for line in plant.lines}
    for base, items in (("webhooks", notes.webhooks), ("escalations", notes.escalations)):
        for i, item in enumerate(items):
            yield from _known_lines(f"notifications.{base}[{i}].lines", item.lines, line_ids)
    for i, escalation in enumerate(notes.escalations):
        if escalation.to not in ids:
            yield (f"notifications.escalations[{i}].to",
                   f"unknown webhook {escalation.to!r} (known: {sorted(ids)})")


def _known_lines(path: str, lines: Sequence[str] | None,
                 known: set[str]) -> Iterator[tuple[str, str]]:
    for j, line in enumerate(lines or []):
        if line not in known:
            yield f"{path}[{j}]", f"unknown line {line!r} (known: {sorted(known)})"
