"""Errors of the KPI engine and its InfluxDB shell."""

from __future__ import annotations

from shopfloor.shared.errors import ShopfloorError


class KpiError(ShopfloorError):
    """A KPI cannot be computed (unknown machine or line, bad window)."""

    prefix = "kpi"


class KpiStoreError(KpiError):
    """InfluxDB could not be read or written for a KPI."""

    prefix = "kpi store"
