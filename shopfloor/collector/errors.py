"""Collector errors. `DatabaseUnavailable` means retry later (nothing is acknowledged);
`LinesRejected` means InfluxDB refused (some of) the lines themselves: retrying the same
request cannot help, so the batch is split to find the bad lines. Both belong to the shared
InfluxDB module (shopfloor.shared.influx) and are named here for the collector's code."""

from __future__ import annotations

from shopfloor.shared.errors import ShopfloorError
from shopfloor.shared.influx import DatabaseUnavailable, LinesRejected

__all__ = ["CollectorError", "DatabaseUnavailable", "LinesRejected"]


class CollectorError(ShopfloorError):
    prefix = "collector"
