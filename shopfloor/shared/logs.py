"""Logging for people on night shift: first failure at ERROR, repeats at DEBUG, recovery
at INFO (`FailureLog`), and one `setup_logging` for every command.

Our own loggers (`shopfloor.*`) log at the chosen level (INFO by default); the libraries
we use log at WARNING whatever that level is (httpx alone would log every InfluxDB write
at INFO), unless SHOPFLOOR_LIBRARY_LOG_LEVEL says otherwise. With SHOPFLOOR_LOG_FILE set
(`shopfloor local up` sets it) lines go to that file, rotated at LOG_FILE_BYTES with
LOG_FILE_BACKUPS old files kept, instead of stderr."""

from __future__ import annotations

import logging
import logging.handlers
import os

LOG_FILE_ENV = "SHOPFLOOR_LOG_FILE"
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 3
LIBRARY_LOGGERS = ("httpx", "httpcore", "urllib3", "paho", "uvicorn", "asyncio", "influxdb_client",
                   "multipart", "watchfiles")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str | None = None) -> None:
    """Configure the root logger once per process (level: DEBUG, INFO, ...; default
    $SHOPFLOOR_LOG_LEVEL, else INFO)."""
    chosen = (level or os.environ.get("SHOPFLOOR_LOG_LEVEL", "INFO")).upper()
    handlers: list[logging.Handler] | None = None
    path = os.environ.get(LOG_FILE_ENV)
    if path:
        handlers = [logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8")]
    logging.basicConfig(level=chosen, format=FORMAT, handlers=handlers, force=bool(handlers))
    library_level = os.environ.get("SHOPFLOOR_LIBRARY_LOG_LEVEL", "WARNING").upper()
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
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
