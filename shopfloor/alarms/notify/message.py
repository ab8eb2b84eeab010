"""What a webhook receives (pure): the JSON body, its idempotency key, and the headers
with the HMAC-SHA256 signature. docs/alarms.md, "Webhooks" is the contract."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from enum import StrEnum

from pydantic import AwareDatetime

from shopfloor.shared.contract import AlarmPayload, Payload


class EventType(StrEnum):
    """`type` of the body and the X-Shopfloor-Event header."""

    TRANSITION = "alarm.transition"
    """A lifecycle transition (raise, clear, ack, shelve, ...)."""
    ESCALATION = "alarm.escalation"
    """An alarm still unacknowledged after an escalation's `after_s`."""


HEADER_KEY = "Idempotency-Key"
HEADER_EVENT = "X-Shopfloor-Event"
HEADER_TIMESTAMP = "X-Shopfloor-Timestamp"
HEADER_SIGNATURE = "X-Shopfloor-Signature"
HEADER_ATTEMPT = "X-Shopfloor-Attempt"
SIGNATURE_PREFIX = "sha256="


class EscalationInfo(Payload):
    """Why an escalation was sent: raised at `raised_at`, unacknowledged `after_s` later."""

    after_s: float
    raised_at: AwareDatetime


class WebhookBody(Payload):
    """The body of one notification. `key` (also the Idempotency-Key header) is the same
    for every attempt and every restart: a receiver counts a transition once by it."""

    key: str
    type: EventType
    alarm: AlarmPayload
    escalation: EscalationInfo | None = None


def _ms(at: dt.datetime) -> int:
    return round(at.timestamp() * 1000)


def transition_key(alarm: AlarmPayload) -> str:
    """`site:machine:rule:kind:at_ms` of the alarm's last transition (its identity: the
    engine never makes two transitions of one kind at one instant for one instance)."""
    assert alarm.last is not None
    return ":".join((alarm.site, alarm.machine, alarm.rule, alarm.last.kind,
                     str(_ms(alarm.last.at))))


def escalation_key(alarm: AlarmPayload, index: int, raised_at: dt.datetime) -> str:
    """`site:machine:rule:escalation<index>:raised_at_ms` (index in `escalations`)."""
    return ":".join((alarm.site, alarm.machine, alarm.rule, f"escalation{index}",
                     str(_ms(raised_at))))


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def headers(secret: bytes, key: str, event: str, body: bytes, attempt: int,
            now: float) -> dict[str, str]:
    """The headers of one attempt (the timestamp, and so the signature, are per attempt)."""
    timestamp = str(int(now))
    return {
        "Content-Type": "application/json",
        HEADER_KEY: key,
        HEADER_EVENT: event,
        HEADER_TIMESTAMP: timestamp,
        HEADER_SIGNATURE: signature(secret, timestamp, body),
        HEADER_ATTEMPT: str(attempt),
    }
