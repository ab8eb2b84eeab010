"""The v2 write path of `shopfloor.shared.influx` (InfluxDB 2.x, 3.x, 1.8+) through
influxdb-client's synchronous write API, passing pre-built line-protocol strings (its
`Point` serialisation is slow).

`prepare` checks the bucket (creating it when missing) and creates the DBRP mapping
database/retention policy -> bucket so that InfluxQL `/query` works on 2.x. That part
follows influxdb-client's documented API but is not exercised by the tests: the only
v2-speaking server here is VictoriaMetrics, which has no buckets, orgs or DBRPs (a
failure of those steps is logged and writing goes ahead)."""

from __future__ import annotations

import logging

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.dbrp_create import DBRPCreate
from influxdb_client.rest import ApiException
from influxdb_client.service.dbr_ps_service import DBRPsService

from shopfloor.shared.enums import DatabaseApi
from shopfloor.shared.influx import (
    REJECT_STATUSES,
    DatabaseUnavailable,
    InfluxQLClient,
    LinesRejected,
    bucket_name,
    org,
    token,
    write_headers,
)
from shopfloor.shared.plant import Database

log = logging.getLogger(__name__)


class V2Writer(InfluxQLClient):
    api = DatabaseApi.V2

    def __init__(self, config: Database) -> None:
        super().__init__(config, headers=write_headers(config, DatabaseApi.V2))
        self._org = org(config)
        self._bucket = bucket_name(config)
        self._client = InfluxDBClient(
            url=config.url, token=token(config), org=self._org,
            timeout=int(config.timeout_s * 1000), retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def prepare(self) -> None:
        try:
            self._ensure_bucket_and_dbrp()
        except ApiException as exc:
            if exc.status is None or exc.status >= 500:
                raise DatabaseUnavailable(f"preparing bucket {self._bucket}: {exc}") from exc
            log.warning(
                "InfluxDB v2: could not check bucket %r / create its DBRP mapping (HTTP %s);"
                " writing anyway: InfluxQL reads may not work until a DBRP mapping exists",
                self._bucket, exc.status,
            )
        except Exception as exc:  # noqa: BLE001 - urllib3 connection errors and the like
            raise DatabaseUnavailable(f"{self._config.url}: {exc!r}") from exc

    def _ensure_bucket_and_dbrp(self) -> None:
        buckets = self._client.buckets_api()
        bucket = buckets.find_bucket_by_name(self._bucket)
        if bucket is None:
            log.info("InfluxDB v2: creating bucket %r in org %r", self._bucket, self._org)
            bucket = buckets.create_bucket(bucket_name=self._bucket, org=self._org)
        dbrps = DBRPsService(self._client.api_client)
        existing = dbrps.get_dbr_ps(org_id=bucket.org_id, db=self._config.database)
        if any(m.bucket_id == bucket.id for m in (existing.content or [])):
            return
        log.info("InfluxDB v2: mapping database %r to bucket %r", self._config.database,
                 self._bucket)
        dbrps.post_dbrp(DBRPCreate(
            org_id=bucket.org_id, bucket_id=bucket.id, database=self._config.database,
            retention_policy=self._config.retention_policy or "autogen", default=True,
        ))

    def write(self, lines: list[str]) -> None:
        try:
            self._write_api.write(
                bucket=self._bucket, org=self._org, record=lines,
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            detail = str(exc.body or exc.reason)[:500]
            if exc.status in REJECT_STATUSES:
                raise LinesRejected(int(exc.status), detail) from exc
            raise DatabaseUnavailable(f"v2 write: HTTP {exc.status}: {detail}") from exc
        except Exception as exc:  # noqa: BLE001 - urllib3 connection errors and the like
            raise DatabaseUnavailable(f"{self._config.url}: {exc!r}") from exc

    def close(self) -> None:
        self._client.close()
        super().close()
