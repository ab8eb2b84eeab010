"""Errors of the KPI engine and its InfluxDB shell."""

from __future__ import annotations

from shopfloor.shared.errors import ShopfloorError


class KpiError(ShopfloorError):
    """A KPI cannot be computed (unknown machine or line, bad window)."""

    prefix = "kpi"


class KpiStoreError(KpiError):
    """InfluxDB could not be read or written for a KPI."""

    prefix = "kpi store"


class KpiStoreRejected(KpiStoreError):
    """InfluxDB refused KPI points as bad (HTTP 400/413/422, e.g. a field type conflict
    with points an older version wrote): retrying them cannot help."""

    prefix = "kpi store: points refused"


class KpiWorkError(KpiError):
    """A request would need more work than the engine's bounds allow (raw telemetry
    beyond `collector.kpi_max_raw_s`, a WIP window beyond `collector.kpi_max_wip_window_s`).
    `reason` says which bound and how to ask instead."""

    prefix = "too much work"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
