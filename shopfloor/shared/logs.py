"""Logging for people on night shift: first failure at ERROR, repeats at DEBUG, recovery
at INFO (`FailureLog`), and one `setup_logging` for every command."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("SHOPFLOOR_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # pymodbus logs every failed request at ERROR; our FailureLog reports them once.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class FailureLog:
    """Tracks whether a thing (a device, the broker) is failing, so that its first failure
    logs at ERROR, repeats at DEBUG, and the recovery at INFO."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self.failing = False
        self.failures = 0

    def failure(self, message: str, *args: object) -> None:
        self.failures += 1
        level = logging.DEBUG if self.failing else logging.ERROR
        self._logger.log(level, f"{self._what}: {message}", *args)
        self.failing = True

    def success(self) -> None:
        if self.failing:
            self._logger.info("%s: recovered after %d failure(s)", self._what, self.failures)
        self.failing = False
        self.failures = 0
