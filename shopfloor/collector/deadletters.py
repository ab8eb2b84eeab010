"""Publishes what the collector cannot store to `shopfloor/v1/{site}/deadletter/collector`
as a `contract.DeadLetter`, and logs each reason once (first at WARNING, repeats at DEBUG)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from shopfloor.collector.messages import Reason
from shopfloor.shared import topics
from shopfloor.shared.contract import DeadLetter, utc_now

log = logging.getLogger(__name__)
MAX_ECHO_CHARS = 4096  # of the offending payload, kept in the dead letter


class DeadLetters:
    def __init__(self, site: str, publish: Callable[[str, bytes], None]) -> None:
        self.topic = topics.dead_letter_topic(site, "collector")
        self._publish = publish
        self._seen: set[Reason] = set()

    def __call__(self, topic: str, reason: Reason, detail: str, raw: bytes) -> None:
        level = logging.DEBUG if reason in self._seen else logging.WARNING
        self._seen.add(reason)
        log.log(level, "dead letter (%s) from %s: %s%s", reason.value, topic, detail,
                "" if level == logging.DEBUG else " (further ones of this kind at DEBUG)")
        letter = DeadLetter(
            topic=topic[:1024], reason=f"{reason.value}: {detail}"[:2048],
            payload=raw[:MAX_ECHO_CHARS].decode("utf-8", "replace"), ts=utc_now(),
        )
        self._publish(self.topic, letter.to_json())
