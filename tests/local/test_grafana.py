"""The configuration `shopfloor local up` hands to Grafana (no Grafana installs here: the
files are checked, not served): loopback port, our InfluxDB as the datasource with the
uid every dashboard uses, and a provider over the committed dashboards folder."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

from shopfloor.dashboards.files import DASHBOARD_DIR, load_committed
from shopfloor.local import grafana
from shopfloor.local.runner import RunDir


def test_grafana_config_points_at_our_database_and_dashboards(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    ini_path = grafana.write_config(run, "http://127.0.0.1:18086", "demo", port=13000)
    ini = configparser.ConfigParser()
    ini.read(ini_path)
    assert ini["server"]["http_addr"] == "127.0.0.1" and ini["server"]["http_port"] == "13000"
    provisioning = Path(ini["paths"]["provisioning"])
    assert provisioning.is_relative_to(tmp_path)

    source = yaml.safe_load((provisioning / "datasources/shopfloor.yaml").read_text())
    (ds,) = source["datasources"]
    assert (ds["type"], ds["url"], ds["jsonData"]["dbName"]) == (
        "influxdb", "http://127.0.0.1:18086", "demo")
    used = {p["datasource"]["uid"] for d in load_committed().values()
            for p in d.get("panels", []) if isinstance(p.get("datasource"), dict)}
    assert used == {ds["uid"]}

    provider = yaml.safe_load((provisioning / "dashboards/shopfloor.yaml").read_text())
    folder = Path(provider["providers"][0]["options"]["path"])
    assert folder == DASHBOARD_DIR and len(list(folder.glob("*.json"))) == 6
    assert Path(ini["dashboards"]["default_home_dashboard_path"]).exists()


def test_without_grafana_up_says_how_to_get_it() -> None:
    assert "apt.grafana.com" in grafana.HOW_TO_GET and str(DASHBOARD_DIR) in grafana.HOW_TO_GET
