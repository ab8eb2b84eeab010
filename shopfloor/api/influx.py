"""The API's InfluxDB client (httpx, async): InfluxQL reads over `/query` (InfluxDB 1.x,
2.x with a DBRP mapping, 3.x) and line-protocol writes over `/write` (1.x) or
`/api/v2/write` (2.x/3.x), chosen from the server's `/ping` version header."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from shopfloor.api.errors import Unavailable
from shopfloor.api.guard import WorkLimiter
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
        headers = {}
        if database.token is not None:
            headers["Authorization"] = f"Token {database.token.get_secret_value()}"
        auth = None
        if database.username and database.password is not None:
            auth = httpx.BasicAuth(database.username, database.password.get_secret_value())
        self._http = httpx.AsyncClient(base_url=database.url.rstrip("/"), headers=headers,
                                       auth=auth, timeout=database.timeout_s)
        self._api: DatabaseApi | None = None if database.api is DatabaseApi.AUTO else database.api

    async def aclose(self) -> None:
        await self._http.aclose()

    async def ping(self, timeout_s: float = 2.0) -> str:
        """The server's version; Unavailable when it does not answer."""
        try:
            response = await self._http.get("/ping", timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise Unavailable(f"database unreachable: {exc.__class__.__name__}") from exc
        if response.status_code != 204:
            raise Unavailable(f"database /ping answered {response.status_code}")
        return response.headers.get("X-Influxdb-Version", "unknown")

    async def query(self, q: str) -> list[dict[str, Any]]:
        """Run one InfluxQL statement (built only from validated, quoted parts); return
        its series (`name`, `tags`, `columns`, `values`), times in epoch ms."""
        params = {"q": q, "db": self._db.database, "epoch": "ms"}
        if self._db.retention_policy:
            params["rp"] = self._db.retention_policy
        try:
            async with self.reads.slot("database query"):
                response = await self._http.get("/query", params=params)
        except httpx.HTTPError as exc:
            raise Unavailable(f"database query failed: {exc.__class__.__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            raise Unavailable(f"database answered {response.status_code} without JSON") from None
        results = body.get("results") or [{}]
        message = body.get("error") or results[0].get("error")
        if message or response.status_code >= 400:
            raise Unavailable(f"database refused the query ({response.status_code}): {message}",
                              "database_error")
        return list(results[0].get("series", []))

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
        try:
            response = await self._http.post(await self._write_path(),
                                             params=self._write_params(precision), content=body)
        except httpx.HTTPError as exc:
            raise Unavailable(f"database write failed: {exc.__class__.__name__}") from exc
        if response.status_code != 204:
            raise Unavailable(f"database write answered {response.status_code}: "
                              f"{response.text[:200]}")

    async def _write_path(self) -> str:
        if self._api is None:
            version = await self.ping()
            self._api = DatabaseApi.V1 if version.startswith("1.") else DatabaseApi.V2
            log.info("database %s is InfluxDB %s: writing with the %s API",
                     self._db.url, version, self._api)
        return "/write" if self._api is DatabaseApi.V1 else "/api/v2/write"

    def _write_params(self, precision: str) -> dict[str, str]:
        if self._api is DatabaseApi.V1:
            params = {"db": self._db.database, "precision": precision}
            if self._db.retention_policy:
                params["rp"] = self._db.retention_policy
            return params
        bucket = self._db.bucket or self._db.database
        if self._db.retention_policy and not self._db.bucket:
            bucket = f"{bucket}/{self._db.retention_policy}"
        return {"bucket": bucket, "org": self._db.org or "", "precision": precision}
