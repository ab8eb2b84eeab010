"""The one InfluxDB access module. Every component (collector, KPI engine, API, dashboards
verify) uses its rules, so they cannot drift apart:

- **version detection**: `/ping`'s `X-Influxdb-Version` of `1.x` selects the v1 write API,
  anything else v2 (`api_for_version`); the plant file may force it (`database.api`).
- **auth**: a token goes in `Authorization: Token ...`; a user name without a token goes as
  `u`/`p` query parameters on v1 and as the `user:password` token InfluxDB 1.8's v2
  compatibility API takes on v2 (`auth_headers`, `auth_params`).
- **org and bucket**: org `"-"` when the plant file names none (InfluxDB 1.8's convention,
  ignored by 3.x and VictoriaMetrics); bucket explicit or `database/retention_policy`.
- **InfluxQL** over `/query` (1.x, 2.x with a DBRP mapping, 3.x), times in epoch ms, and
  one reading of its answers (`series_of`).
- **writes**: line protocol, ms precision; `REJECT_STATUSES` mean the lines themselves are
  bad (`LinesRejected`), anything else that fails means retry later (`DatabaseUnavailable`).

The synchronous clients (`InfluxQLClient`, `V1Writer`, `open_writer`, and `V2Writer` in
`shopfloor.shared.influx_v2`) serve the collector, the KPI engine and dashboards verify;
the API's asyncio client (`shopfloor.api.influx`) builds its requests with the same
functions. Keep the v1 write path as it is: it is the collector's measured fast path
(docs/collector.md)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from shopfloor.shared.enums import DatabaseApi
from shopfloor.shared.errors import ShopfloorError
from shopfloor.shared.plant import Database

log = logging.getLogger(__name__)
REJECT_STATUSES = (400, 413, 422)
DEFAULT_ORG = "-"


class InfluxError(ShopfloorError):
    prefix = "influxdb"


class DatabaseUnavailable(InfluxError):
    """InfluxDB cannot be reached or refuses us as a whole (down, auth, missing database):
    retry later, nothing is lost."""

    prefix = "influxdb: unavailable"


class QueryRefused(DatabaseUnavailable):
    """InfluxDB answered a query with an error (bad statement, unknown database)."""

    prefix = "influxdb: query refused"


class LinesRejected(InfluxError):
    """InfluxDB answered 400/413/422 for a write: the lines (or some of them) are bad."""

    prefix = "influxdb: lines rejected"

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


# --- the rules --------------------------------------------------------------------------

def api_for_version(version: str) -> DatabaseApi:
    """v1 for a `/ping` version of 1.x (with or without a leading "v"), v2 otherwise."""
    return DatabaseApi.V1 if version.strip().lstrip("v").startswith("1.") else DatabaseApi.V2


def version_of(url: str, status: int, headers: Mapping[str, str]) -> str:
    """The server version a `/ping` answer names ("" when it names none: v2 then).
    InfluxDB 1.x and 2.x answer 204, 3.x 200; any other status (a proxy, a wrong URL) is
    DatabaseUnavailable, never taken for a server of some version."""
    if not 200 <= status < 300:
        raise DatabaseUnavailable(f"{url}: /ping answered HTTP {status}")
    return headers.get("X-Influxdb-Version", "")


def org(config: Database) -> str:
    return config.org or DEFAULT_ORG


def bucket_name(config: Database) -> str:
    """The bucket: explicit, or InfluxDB 1.8's "database/retention_policy" convention."""
    if config.bucket:
        return config.bucket
    rp = config.retention_policy
    return f"{config.database}/{rp}" if rp else config.database


def token(config: Database) -> str:
    """The v2 token: explicit, or `user:password` (InfluxDB 1.8's v2-compatible auth)."""
    if config.token is not None:
        return config.token.get_secret_value()
    if config.username:
        password = config.password.get_secret_value() if config.password else ""
        return f"{config.username}:{password}"
    return ""


def auth_headers(config: Database) -> dict[str, str]:
    """Headers every request carries: the token, when the plant file gives one."""
    if config.token is None:
        return {}
    return {"Authorization": f"Token {config.token.get_secret_value()}"}


def auth_params(config: Database) -> dict[str, str]:
    """v1 credentials (`u`, `p`) when there is a user name and no token."""
    if config.token is not None or not config.username:
        return {}
    params = {"u": config.username}
    if config.password is not None:
        params["p"] = config.password.get_secret_value()
    return params


def query_params(config: Database, influxql: str) -> dict[str, str]:
    params = {"db": config.database, "epoch": "ms", "q": influxql, **auth_params(config)}
    if config.retention_policy:
        params["rp"] = config.retention_policy
    return params


def write_request(config: Database, api: DatabaseApi,
                  precision: str = "ms") -> tuple[str, dict[str, str]]:
    """Path and parameters of a line-protocol write with the given API."""
    if api is DatabaseApi.V1:
        params = {"db": config.database, "precision": precision, **auth_params(config)}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        return "/write", params
    return "/api/v2/write", {"bucket": bucket_name(config), "org": org(config),
                             "precision": precision}


def write_headers(config: Database, api: DatabaseApi) -> dict[str, str]:
    """v2 writes authenticate with a token, derived from user/password if need be."""
    if api is DatabaseApi.V1:
        return auth_headers(config)
    value = token(config)
    return {"Authorization": f"Token {value}"} if value else {}


def series_of(status: int, body: bytes | str) -> list[dict[str, Any]]:
    """The first statement's series of a `/query` answer; QueryRefused with InfluxDB's
    message when it reports an error, DatabaseUnavailable when the answer is not one."""
    import json

    try:
        parsed = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        raise DatabaseUnavailable(f"/query: HTTP {status} without JSON: {text[:200]}") from None
    if not isinstance(parsed, dict):
        raise DatabaseUnavailable(f"/query: HTTP {status}: unexpected answer")
    results = parsed.get("results") or [{}]
    first = results[0] if isinstance(results[0], dict) else {}
    message = parsed.get("error") or first.get("error")
    if message or status >= 400:
        raise QueryRefused(f"/query: HTTP {status}: {message}")
    return list(first.get("series", []))


def error_text(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("error", reply.text))[:500]
    except (ValueError, AttributeError):
        return reply.text[:500]


# --- synchronous clients ----------------------------------------------------------------

def ping(config: Database, timeout_s: float | None = None) -> str:
    """The server's version from `/ping`; DatabaseUnavailable when it does not answer."""
    try:
        reply = httpx.get(f"{config.url.rstrip('/')}/ping",
                          timeout=config.timeout_s if timeout_s is None else timeout_s)
    except httpx.HTTPError as exc:
        raise DatabaseUnavailable(f"{config.url}: {exc!r}") from exc
    version = version_of(config.url, reply.status_code, reply.headers)
    log.debug("InfluxDB /ping: HTTP %d, version %r", reply.status_code, version)
    return version


def responds(url: str, timeout_s: float = 1.0) -> bool:
    """True when the InfluxDB at `url` answers `/ping` (a readiness probe)."""
    try:
        reply = httpx.get(f"{url.rstrip('/')}/ping", timeout=timeout_s)
        version_of(url, reply.status_code, reply.headers)
    except (httpx.HTTPError, DatabaseUnavailable):
        return False
    return True


def detect_api(config: Database) -> DatabaseApi:
    """The plant file's `database.api`, or the one `/ping` says."""
    if config.api is not DatabaseApi.AUTO:
        return config.api
    return api_for_version(ping(config))


class LineWriter(Protocol):
    """Writes line protocol (ms precision) and reads InfluxQL; raises DatabaseUnavailable
    or LinesRejected."""

    api: DatabaseApi

    def prepare(self) -> None: ...

    def write(self, lines: list[str]) -> None: ...

    def query(self, influxql: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def open_writer(config: Database) -> LineWriter:
    """Detect the API and return a prepared writer; DatabaseUnavailable when unreachable."""
    api = detect_api(config)
    if api is DatabaseApi.V1:
        writer: LineWriter = V1Writer(config)
    else:
        from shopfloor.shared.influx_v2 import V2Writer  # influxdb-client only when needed

        writer = V2Writer(config)
    try:
        writer.prepare()
    except BaseException:
        writer.close()
        raise
    log.info("InfluxDB at %s: %s write API", config.url, api)
    return writer


class InfluxQLClient:
    """InfluxQL over `/query` with the plant file's auth (one pooled connection)."""

    def __init__(self, config: Database, headers: dict[str, str] | None = None) -> None:
        self._config = config
        self.http = httpx.Client(base_url=config.url.rstrip("/"), timeout=config.timeout_s,
                                 headers=headers if headers is not None else auth_headers(config))

    @property
    def database(self) -> str:
        return self._config.database

    def query(self, influxql: str, method: str = "GET") -> list[dict[str, Any]]:
        """Series of the first statement's result; DatabaseUnavailable on any failure
        (QueryRefused when InfluxDB answered with an error)."""
        params = query_params(self._config, influxql)
        try:
            reply = self.http.request(method, "/query", params=params)
        except httpx.HTTPError as exc:
            raise DatabaseUnavailable(f"{self._config.url}: {exc!r}") from exc
        return series_of(reply.status_code, reply.content)

    def close(self) -> None:
        self.http.close()


class V1Writer(InfluxQLClient):
    """InfluxDB 1.x: POST /write?db=&rp=&precision=ms (optional u/p)."""

    api = DatabaseApi.V1

    def __init__(self, config: Database) -> None:
        super().__init__(config)
        self._write_path, self._write_params = write_request(config, DatabaseApi.V1)

    def prepare(self) -> None:
        """CREATE DATABASE (idempotent in 1.x)."""
        self.query(f'CREATE DATABASE "{self._config.database}"', method="POST")

    def write(self, lines: list[str]) -> None:
        body = "\n".join(lines).encode()
        try:
            reply = self.http.post(self._write_path, params=self._write_params, content=body)
        except httpx.HTTPError as exc:
            raise DatabaseUnavailable(f"{self._config.url}: {exc!r}") from exc
        if reply.status_code == 204:
            return
        detail = error_text(reply)
        if reply.status_code in REJECT_STATUSES:
            raise LinesRejected(reply.status_code, detail)
        raise DatabaseUnavailable(f"/write: HTTP {reply.status_code}: {detail}")
