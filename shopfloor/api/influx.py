"""The API's InfluxDB client (httpx, asyncio): InfluxQL reads over `/query` (InfluxDB 1.x,
2.x with a DBRP mapping, 3.x) and line-protocol writes over `/write` (1.x) or
`/api/v2/write` (2.x/3.x), chosen from the server's `/ping` version header. Requests,
auth, org/bucket and the reading of answers come from the shared InfluxDB module
(shopfloor.shared.influx); only the asyncio I/O and the API's read limiter are here."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from shopfloor.api.errors import Unavailable
from shopfloor.api.guard import WorkLimiter
from shopfloor.shared import influx
from shopfloor.shared.enums import DatabaseApi
from shopfloor.shared.plant import Database

log = logging.getLogger(__name__)

Row = dict[str, Any]


class InfluxClient:
    """One pooled HTTP client to the plant's database."""

    def __init__(self, database: Database, reads: WorkLimiter | None = None) -> None:
        self._db = database
        self.reads = reads or WorkLimiter(4, database.timeout_s)
        """Every query runs in one of its slots, under its time limit (api/guard.py)."""
        self._http = httpx.AsyncClient(base_url=database.url.rstrip("/"),
                                       headers=influx.auth_headers(database),
                                       timeout=database.timeout_s)
        self._api: DatabaseApi | None = None if database.api is DatabaseApi.AUTO else database.api

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ping(self, timeout_s: float = 2.0) -> str:
        """The server's version; Unavailable when it does not answer."""
        try:
            response = await self._http.get("/ping", timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise Unavailable(f"database unreachable: {exc.__class__.__name__}") from exc
        try:
            version = influx.version_of(self._db.url, response.status_code, response.headers)
        except influx.DatabaseUnavailable as exc:
            raise Unavailable(f"database answered: {exc}") from exc
        return version or "unknown"

    async def query(self, q: str) -> list[dict[str, Any]]:
        """Run one InfluxQL statement (built only from validated, quoted parts); return
        its series (`name`, `tags`, `columns`, `values`), times in epoch ms."""
        params = influx.query_params(self._db, q)
        try:
            async with self.reads.slot("database query"):
                response = await self._http.get("/query", params=params)
        except httpx.HTTPError as exc:
            raise Unavailable(f"database query failed: {exc.__class__.__name__}") from exc
        try:
            return influx.series_of(response.status_code, response.content)
        except influx.QueryRefused as exc:
            raise Unavailable(f"database refused the query: {exc}", "database_error") from exc
        except influx.DatabaseUnavailable as exc:
            raise Unavailable(f"database answered: {exc}") from exc

    async def rows(self, q: str) -> list[Row]:
        """Query and flatten every series into rows (column -> value, plus its tags)."""
        out: list[Row] = []
        for series in await self.query(q):
            tags = series.get("tags") or {}
            for values in series.get("values", []):
                out.append({**tags, **dict(zip(series["columns"], values, strict=False))})
        return out

    async def write(self, lines: list[str], precision: str = "ms") -> None:
        """Write line protocol; Unavailable when the server refuses it or is down."""
        if not lines:
            return
        body = "\n".join(lines).encode()
        api = await self._write_api()
        path, params = influx.write_request(self._db, api, precision)
        try:
            response = await self._http.post(path, params=params, content=body,
                                             headers=influx.write_headers(self._db, api))
        except httpx.HTTPError as exc:
            raise Unavailable(f"database write failed: {exc.__class__.__name__}") from exc
        if response.status_code != 204:
            raise Unavailable(f"database write answered {response.status_code}: "
                              f"{response.text[:200]}")

    async def _write_api(self) -> DatabaseApi:
        if self._api is None:
            version = await self.ping()
            self._api = influx.api_for_version(version)
            log.info("database %s is InfluxDB %s: writing with the %s API",
                     self._db.url, version, self._api)
        return self._api
