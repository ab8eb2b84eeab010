"""An InfluxQL query target for Grafana's InfluxDB datasource. grafana-foundation-sdk has
no InfluxDB query type, so this is ours: a raw InfluxQL query (`rawQuery: true`) in the
JSON shape Grafana's InfluxDB plugin stores in a dashboard."""

from __future__ import annotations

from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DATASOURCE_TYPE = "influxdb"
DATASOURCE_UID = "shopfloor-influxdb"
"""The one datasource every panel and variable refers to; the provisioning files and
`shopfloor dashboards push` create it with this uid."""

DATASOURCE = DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

ResultFormat = Literal["time_series", "table"]


class InfluxQLQuery(cogvariants.Dataquery):
    """One target of a panel: InfluxQL text with Grafana macros and `$variables` left in."""

    def __init__(
        self,
        query: str,
        ref_id: str = "A",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": DATASOURCE.to_json(),
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload


class InfluxQLTarget(cogbuilder.Builder[InfluxQLQuery]):
    """Builder in the SDK's style: `InfluxQLTarget("SELECT ...").ref_id("B").table()`."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(" ".join(query.split()))

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        """Series name pattern, e.g. `$tag_machine` (Grafana's InfluxDB alias syntax)."""
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self
