"""The API's exceptions. Library code raises these; `main.py` turns each into an HTTP
answer with a JSON body `{"error": {"code": ..., "message": ...}}` (only here, in api/)."""

from __future__ import annotations

from shopfloor.shared.errors import ShopfloorError


class ApiError(ShopfloorError):
    """Base of API errors. `status` is the HTTP status, `code` a stable machine-readable
    reason (documented in docs/api.md)."""

    prefix = "api"
    status = 500
    code = "internal"
    retry_after_s: int | None = None  # sent as Retry-After when set

    @property
    def headers(self) -> dict[str, str] | None:
        """HTTP headers of the answer: Retry-After when `retry_after_s` is set."""
        return None if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Unauthorized(ApiError):
    """Missing or unknown API key (401)."""

    prefix = "unauthorized"
    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """Valid key, but its role or line restriction does not allow this (403)."""

    prefix = "forbidden"
    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """Unknown machine, line, point or command id (404)."""

    prefix = "not found"
    status = 404
    code = "not_found"


class Invalid(ApiError):
    """A request the plant file does not allow: point not writable, value out of range,
    wrong type, bad window (422)."""

    prefix = "invalid"
    status = 422
    code = "invalid"


class Conflict(ApiError):
    """The request is valid but the plant's current situation refuses it: maintenance
    interlock, an Idempotency-Key reused for a different request (409)."""

    prefix = "conflict"
    status = 409
    code = "conflict"


class TooManyRequests(ApiError):
    """A bounded resource of this caller is full; retry after `retry_after_s` (429, with
    the Retry-After header)."""

    prefix = "too many requests"
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code)
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):
    """A backend (broker, database) cannot be reached or answered with an error (503)."""

    prefix = "unavailable"
    status = 503
    code = "unavailable"


class Busy(Unavailable):
    """Every slot for on-demand work is taken (503 with Retry-After)."""

    code = "busy"
    retry_after_s = 1


class TimedOut(Unavailable):
    """An on-demand read ran longer than `api.query_timeout_s` (503 with Retry-After)."""

    code = "timeout"
    retry_after_s = 5


class ConfigError(ShopfloorError):
    """The API's settings are unsafe or inconsistent (refused at start)."""

    prefix = "api config"
