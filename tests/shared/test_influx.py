"""The one InfluxDB module (shopfloor.shared.influx): its rules (version, org, bucket,
auth) as pure functions, and every client built on it against real InfluxDB 1.x, with and
without authentication: the collector's and KPI engine's writer, the dashboards verifier
and the API's asyncio client must all authenticate, write and query the same way."""

from __future__ import annotations

import ast
import asyncio
import functools
import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from shopfloor.api.errors import Unavailable
from shopfloor.api.influx import InfluxClient
from shopfloor.dashboards.verify import influxql_client
from shopfloor.shared import influx
from shopfloor.shared.enums import DatabaseApi
from shopfloor.shared.influx import (
    DatabaseUnavailable,
    LinesRejected,
    QueryRefused,
    V1Writer,
    open_writer,
)
from shopfloor.shared.plant import Database
from tests.harness.services import InfluxDB, free_port, running

ROOT = Path(__file__).resolve().parents[2] / "shopfloor"


@given(st.from_regex(r"v?1\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True))
def test_a_1x_version_selects_v1(version):
    assert influx.api_for_version(version) is DatabaseApi.V1


@given(st.sampled_from(["2.7.1", "v2.0.0", "3.0.0", "", "unknown", "victoria-metrics"]))
def test_any_other_version_selects_v2(version):
    assert influx.api_for_version(version) is DatabaseApi.V2


@pytest.mark.parametrize(("status", "headers", "version"), [
    (204, {"X-Influxdb-Version": "1.6.7"}, "1.6.7"),   # 1.x, 2.x
    (200, {"X-Influxdb-Version": "3.0.1"}, "3.0.1"),   # 3.x answers 200
    (204, {}, ""),                                      # VictoriaMetrics: no version
])
def test_a_ping_answer_names_the_version(status, headers, version):
    assert influx.version_of("http://db", status, httpx.Headers(headers)) == version


@pytest.mark.parametrize("status", [301, 401, 404, 502])
def test_any_other_ping_answer_is_no_database(status):
    with pytest.raises(DatabaseUnavailable, match=f"/ping answered HTTP {status}"):
        influx.version_of("http://db", status, httpx.Headers({"X-Influxdb-Version": "1.8"}))


@pytest.fixture
def not_influxdb(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server that is no InfluxDB (a wrong URL in the plant file): 404 on /ping."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_client_reads_a_ping_the_same_way(not_influxdb):
    """The synchronous clients, the readiness probe and the API's asyncio client all
    refuse a server whose /ping is no InfluxDB answer."""
    config = Database(url=not_influxdb, timeout_s=5.0)
    with pytest.raises(DatabaseUnavailable, match="/ping answered HTTP 404"):
        influx.detect_api(config)
    assert not influx.responds(not_influxdb, timeout_s=5.0)

    async def api() -> None:
        client = InfluxClient(config)
        try:
            await client.ping(timeout_s=5.0)
        finally:
            await client.aclose()
    with pytest.raises(Unavailable, match="/ping answered HTTP 404"):
        asyncio.run(api())


def test_one_default_org_for_every_v2_write():
    config = Database()
    assert influx.org(config) == "-"
    _, params = influx.write_request(config, DatabaseApi.V2)
    assert params["org"] == "-"
    assert influx.org(Database(org="plant")) == "plant"


def test_bucket_follows_the_18_convention_unless_named():
    assert influx.bucket_name(Database(database="sf")) == "sf"
    assert influx.bucket_name(Database(database="sf", retention_policy="week")) == "sf/week"
    assert influx.bucket_name(Database(database="sf", bucket="b")) == "b"


def test_auth_token_wins_and_user_password_go_where_each_api_takes_them():
    with_token = Database(token=SecretStr("t0k"), username="u", password=SecretStr("p"))
    assert influx.auth_headers(with_token) == {"Authorization": "Token t0k"}
    assert influx.auth_params(with_token) == {}
    with_user = Database(username="u", password=SecretStr("p"))
    assert influx.auth_headers(with_user) == {}
    assert influx.auth_params(with_user) == {"u": "u", "p": "p"}
    assert influx.write_request(with_user, DatabaseApi.V1)[1]["u"] == "u"
    assert influx.write_headers(with_user, DatabaseApi.V2) == {"Authorization": "Token u:p"}
    assert influx.write_headers(Database(), DatabaseApi.V2) == {}


@pytest.mark.parametrize(("status", "body", "error"), [
    (200, b'{"results":[{"statement_id":0,"error":"database not found: x"}]}', QueryRefused),
    (400, b'{"error":"error parsing query"}', QueryRefused),
    (502, b"<html>bad gateway</html>", DatabaseUnavailable),
    (200, b"[1, 2]", DatabaseUnavailable),
])
def test_query_answers_that_are_not_series_raise_clearly(status, body, error):
    with pytest.raises(error):
        influx.series_of(status, body)


def test_no_component_talks_to_influxdb_on_its_own():
    """Only the shared module (and the API's asyncio client built on it) speaks /query,
    /write or /ping; any other module doing so is a second copy of the rules."""
    allowed = {"shared/influx.py", "shared/influx_v2.py", "api/influx.py"}
    found = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in (
                    "/query", "/write", "/ping", "/api/v2/write"):
                found.append(f"{rel}:{node.lineno} {node.value}")
    assert found == []


@pytest.fixture
def database(influxdb: InfluxDB) -> Database:
    return Database(url=influxdb.url, database=f"db_{uuid.uuid4().hex[:8]}", timeout_s=5.0)


def test_detects_v1_and_round_trips_through_every_client(database):
    assert influx.detect_api(database) is DatabaseApi.V1
    writer = open_writer(database)
    try:
        assert isinstance(writer, V1Writer)
        writer.write(["m,machine=a x=1.5 1700000000000", "m,machine=b x=2.5 1700000000001"])
        rows = writer.query('SELECT "x" FROM "m"')
        assert rows[0]["values"] == [[1700000000000, 1.5], [1700000000001, 2.5]]
        verifier = influxql_client(database.url, database.database)
        assert verifier.query('SELECT "x" FROM "m"') == rows
        verifier.close()
        assert asyncio.run(_api_round_trip(database)) == rows
    finally:
        writer.close()


async def _api_round_trip(database: Database) -> list[dict]:
    client = InfluxClient(database)
    try:
        await client.write(["m,machine=c x=3.5 1700000000002"])
        series = await client.query('SELECT "x" FROM "m" WHERE "machine" != \'c\'')
        assert [r["x"] for r in await client.rows('SELECT "x" FROM "m"')] == [1.5, 2.5, 3.5]
        return series
    finally:
        await client.aclose()


def test_bad_lines_are_rejected_and_bad_queries_refused(database):
    writer = open_writer(database)
    try:
        writer.write(["m x=1.5 1700000000000"])
        with pytest.raises(LinesRejected) as rejected:
            writer.write(['m x="text" 1700000000001'])
        assert rejected.value.status == 400 and "conflict" in rejected.value.detail
        with pytest.raises(QueryRefused, match="error parsing query"):
            writer.query("SELEKT nothing")
    finally:
        writer.close()


def test_an_unreachable_server_is_unavailable_for_every_client():
    config = Database(url=f"http://127.0.0.1:{free_port()}", timeout_s=1.0)
    with pytest.raises(DatabaseUnavailable):
        open_writer(config)
    with pytest.raises(DatabaseUnavailable):
        influxql_client(config.url, config.database, timeout_s=1.0).query("SHOW DATABASES")

    async def api() -> None:
        client = InfluxClient(config)
        try:
            await client.query("SHOW DATABASES")
        finally:
            await client.aclose()
    with pytest.raises(Unavailable):
        asyncio.run(api())


class AuthInfluxDB(InfluxDB):
    """InfluxDB 1.x with authentication on, and one admin user."""

    user, password = "admin", "s3cret pass"

    def command(self) -> list[str]:
        cmd = super().command()
        conf = self.workdir / "influxdb.conf"
        conf.write_text(conf.read_text().replace("[http]\n", "[http]\n  auth-enabled = true\n"))
        return cmd

    def ready(self) -> None:
        super().ready()
        httpx.post(f"{self.url}/query", params={
            "q": f"CREATE USER {self.user} WITH PASSWORD '{self.password}' "
                 "WITH ALL PRIVILEGES"}).raise_for_status()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthInfluxDB]:
    with running(AuthInfluxDB(tmp_path_factory.mktemp("influx-auth"))) as server:
        yield server


def test_every_client_authenticates_with_the_plant_files_credentials(secured):
    config = Database(url=secured.url, database="authed", username=secured.user,
                      password=SecretStr(secured.password), timeout_s=5.0)
    writer = open_writer(config)
    try:
        writer.write(["m x=1.5 1700000000000"])
        assert writer.query('SELECT "x" FROM "m"')[0]["values"] == [[1700000000000, 1.5]]
    finally:
        writer.close()

    async def api() -> list[dict]:
        client = InfluxClient(config)
        try:
            await client.write(["m x=2.5 1700000000001"])
            return await client.rows('SELECT "x" FROM "m"')
        finally:
            await client.aclose()
    assert [r["x"] for r in asyncio.run(api())] == [1.5, 2.5]

    anonymous = config.model_copy(update={"username": None, "password": None})
    with pytest.raises(DatabaseUnavailable, match="401|auth"):
        open_writer(anonymous)
