"""Collector errors. `DatabaseUnavailable` means retry later (nothing is acknowledged);
`LinesRejected` means InfluxDB refused (some of) the lines themselves: retrying the same
request cannot help, so the batch is split to find the bad lines."""

from __future__ import annotations

from shopfloor.shared.errors import ShopfloorError


class CollectorError(ShopfloorError):
    prefix = "collector"


class DatabaseUnavailable(CollectorError):
    """InfluxDB cannot be reached or refuses us as a whole (down, auth, missing database)."""

    prefix = "collector: database unavailable"


class LinesRejected(CollectorError):
    """InfluxDB answered 400/413/422 for a write: the lines (or some of them) are bad."""

    prefix = "collector: lines rejected"

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")
