"""InfluxDB access: pick the write API from `/ping` (1.x -> v1 `/write`, else the v2 API
via influxdb-client), prepare the database at start, write line protocol, and read with
InfluxQL over `/query` (which 1.x, 2.x with a DBRP mapping, and 3.x answer)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from shopfloor.collector.errors import DatabaseUnavailable, LinesRejected
from shopfloor.shared.enums import DatabaseApi
from shopfloor.shared.plant import Database

log = logging.getLogger(__name__)
REJECT_STATUSES = (400, 413, 422)


class LineWriter(Protocol):
    """Writes line protocol (ms precision); raises DatabaseUnavailable or LinesRejected."""

    api: DatabaseApi

    def prepare(self) -> None: ...

    def write(self, lines: list[str]) -> None: ...

    def query(self, influxql: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def detect_api(config: Database) -> DatabaseApi:
    """v1 for a server whose /ping says 1.x, v2 otherwise; the plant file may force it."""
    if config.api is not DatabaseApi.AUTO:
        return config.api
    try:
        reply = httpx.get(f"{config.url.rstrip('/')}/ping", timeout=config.timeout_s)
    except httpx.HTTPError as exc:
        raise DatabaseUnavailable(f"{config.url}: {exc!r}") from exc
    version = reply.headers.get("X-Influxdb-Version", "")
    log.debug("InfluxDB /ping: HTTP %d, version %r", reply.status_code, version)
    return DatabaseApi.V1 if version.lstrip("v").startswith("1.") else DatabaseApi.V2


def open_writer(config: Database) -> LineWriter:
    """Detect the API and return a prepared writer; DatabaseUnavailable when unreachable."""
    api = detect_api(config)
    if api is DatabaseApi.V1:
        writer: LineWriter = V1Writer(config)
    else:
        from shopfloor.collector.database_v2 import V2Writer

        writer = V2Writer(config)
    try:
        writer.prepare()
    except BaseException:
        writer.close()
        raise
    log.info("InfluxDB at %s: %s write API", config.url, api)
    return writer


class InfluxQL:
    """InfluxQL over /query with the auth of either API."""

    def __init__(self, config: Database, headers: dict[str, str] | None = None) -> None:
        self._config = config
        self._params: dict[str, str] = {"db": config.database, "epoch": "ms"}
        if config.username:
            self._params["u"] = config.username
        if config.password:
            self._params["p"] = config.password.get_secret_value()
        self.http = httpx.Client(
            base_url=config.url.rstrip("/"), timeout=config.timeout_s, headers=headers
        )

    def query(self, influxql: str, method: str = "GET") -> list[dict[str, Any]]:
        """Series of the first statement's result; DatabaseUnavailable on any failure."""
        try:
            reply = self.http.request(method, "/query", params={**self._params, "q": influxql})
        except httpx.HTTPError as exc:
            raise DatabaseUnavailable(f"{self._config.url}: {exc!r}") from exc
        if reply.status_code != 200:
            raise DatabaseUnavailable(f"/query: HTTP {reply.status_code}: {reply.text[:200]}")
        result = reply.json().get("results", [{}])[0]
        if "error" in result:
            raise DatabaseUnavailable(f"/query: {result['error']}")
        return list(result.get("series", []))

    def close(self) -> None:
        self.http.close()


class V1Writer(InfluxQL):
    """InfluxDB 1.x: POST /write?db=&rp=&precision=ms (optional u/p)."""

    api = DatabaseApi.V1

    def __init__(self, config: Database) -> None:
        super().__init__(config)
        self._write_params = {k: v for k, v in self._params.items() if k != "epoch"}
        self._write_params["precision"] = "ms"
        if config.retention_policy:
            self._write_params["rp"] = config.retention_policy

    def prepare(self) -> None:
        """CREATE DATABASE (idempotent in 1.x)."""
        name = self._config.database
        self.query(f'CREATE DATABASE "{name}"', method="POST")

    def write(self, lines: list[str]) -> None:
        body = "\n".join(lines).encode()
        try:
            reply = self.http.post("/write", params=self._write_params, content=body)
        except httpx.HTTPError as exc:
            raise DatabaseUnavailable(f"{self._config.url}: {exc!r}") from exc
        if reply.status_code == 204:
            return
        detail = _error_text(reply)
        if reply.status_code in REJECT_STATUSES:
            raise LinesRejected(reply.status_code, detail)
        raise DatabaseUnavailable(f"/write: HTTP {reply.status_code}: {detail}")


def _error_text(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("error", reply.text))[:500]
    except ValueError:
        return reply.text[:500]
