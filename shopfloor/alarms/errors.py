"""Exceptions of the alarm component."""

from __future__ import annotations


class AlarmError(Exception):
    """Base of the alarm component's errors."""


class LifecycleError(AlarmError):
    """An action the alarm's state does not allow (ack with nothing to ack, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"alarm lifecycle: {message}")


class NotifyError(AlarmError):
    """The notifier cannot work: its queue file, a webhook's missing secret."""

    def __init__(self, message: str) -> None:
        super().__init__(f"alarm notifications: {message}")
