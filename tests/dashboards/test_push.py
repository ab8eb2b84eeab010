"""`shopfloor dashboards push` against a stand-in for Grafana's HTTP API (see
grafana_standin.py: no Grafana server installs here, this is the one stand-in allowed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from shopfloor.cli import main
from shopfloor.dashboards.build import load_committed
from shopfloor.dashboards.query import DATASOURCE_UID
from tests.dashboards.grafana_standin import GrafanaStandIn
from tests.harness.services import free_port

TOKEN = "glsa_test_token"


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    server = GrafanaStandIn(TOKEN)
    yield server
    server.close()


def run_push(url: str, token: str = TOKEN, *extra: str) -> tuple[int, str]:
    args = ["dashboards", "push", "--url", url, "--token", token,
            "--influx-url", "http://influxdb:8086", "--database", "plant", *extra]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def test_push_creates_datasource_folder_and_dashboards(grafana: GrafanaStandIn) -> None:
    code, output = run_push(grafana.url, TOKEN, "--influx-token", "influx-secret")
    assert code == 0, output
    datasource = grafana.state.datasources[DATASOURCE_UID]
    assert datasource["type"] == "influxdb" and datasource["jsonData"]["version"] == "InfluxQL"
    assert datasource["jsonData"]["dbName"] == "plant"
    assert datasource["secureJsonData"]["httpHeaderValue1"] == "Token influx-secret"
    assert list(grafana.state.folders) == ["shopfloor"]
    committed = {m["uid"]: m for m in load_committed().values()}
    assert set(grafana.state.dashboards) == set(committed)
    for uid, stored in grafana.state.dashboards.items():
        assert stored["folderUid"] == "shopfloor" and stored["version"] == 1
        assert stored["dashboard"]["panels"] == committed[uid]["panels"]


def test_push_twice_updates_in_place(grafana: GrafanaStandIn) -> None:
    assert run_push(grafana.url)[0] == 0
    code, output = run_push(grafana.url, TOKEN, "--influx-user", "u", "--influx-password", "p")
    assert code == 0, output
    assert "datasource updated, folder exists" in output
    assert len(grafana.state.datasources) == 1 and len(grafana.state.folders) == 1
    assert {d["version"] for d in grafana.state.dashboards.values()} == {2}
    assert grafana.state.datasources[DATASOURCE_UID]["user"] == "u"


def test_wrong_token_is_a_clear_error(grafana: GrafanaStandIn) -> None:
    code, output = run_push(grafana.url, "wrong")
    assert code == 1
    assert "[grafana] datasource:" in output and "Unauthorized" in output
    assert grafana.state.dashboards == {}


def test_unreachable_grafana_is_a_clear_error() -> None:
    code, output = run_push(f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach Grafana" in output
