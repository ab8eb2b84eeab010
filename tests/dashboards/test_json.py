"""The committed dashboard JSON: equal to a fresh build, unique uids and panel ids, every
datasource reference resolves to the provisioned datasource, every variable used is
declared, panels do not overlap on Grafana's 24-column grid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopfloor.dashboards.build import DASHBOARD_DIR, load_committed, render_all, stale
from shopfloor.dashboards.panels_model import walk_panels

PROVISIONING = DASHBOARD_DIR / "provisioning"
DASHBOARDS = load_committed()
MACROS = {"timeFilter", "__timeFilter", "__interval", "__interval_ms", "interval",
          "tag_site", "tag_line", "tag_machine", "tag_agent", "tag_buffer", "tag_collector",
          "col"}  # $col: the column name, in an alias (Grafana's InfluxDB alias patterns)


def datasource_files() -> list[Path]:
    return [*PROVISIONING.glob("datasources/*.yaml"), *PROVISIONING.glob("variants/*.yaml")]


def provisioned_uids() -> set[str]:
    uids = set()
    for path in PROVISIONING.glob("datasources/*.yaml"):
        uids |= {d["uid"] for d in yaml.safe_load(path.read_text())["datasources"]}
    return uids


def datasource_refs(model: dict[str, Any]) -> list[dict[str, Any]]:
    refs = [v["datasource"] for v in model["templating"]["list"] if "datasource" in v]
    for panel in walk_panels(model["panels"]):
        if panel.get("datasource"):
            refs.append(panel["datasource"])
        refs += [t["datasource"] for t in panel.get("targets", []) if "datasource" in t]
    return refs


def test_committed_json_equals_a_fresh_build() -> None:
    assert stale() == [], "run `shopfloor dashboards build` and commit dashboards/*.json"
    assert sorted(render_all()) == sorted(DASHBOARDS)


def test_uids_unique_and_valid() -> None:
    uids = [m["uid"] for m in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids) == 6
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) for uid in uids)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_ids_unique(name: str) -> None:
    ids = [p["id"] for p in walk_panels(DASHBOARDS[name]["panels"])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_datasource_reference_resolves(name: str) -> None:
    uids = provisioned_uids()
    refs = datasource_refs(DASHBOARDS[name])
    assert refs
    assert all(r.get("uid") in uids and r.get("type") == "influxdb" for r in refs), refs


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_variable_used_is_declared(name: str) -> None:
    model = DASHBOARDS[name]
    declared = {v["name"] for v in model["templating"]["list"]}
    texts = [v["query"] for v in model["templating"]["list"]]
    for panel in walk_panels(model["panels"]):
        texts += [t["query"] for t in panel.get("targets", [])]
        texts += [t.get("alias", "") for t in panel.get("targets", [])]
    used = {m for text in texts for m in re.findall(r"\$(\w+)", text)}
    assert used - declared - MACROS == set()
    assert declared == {"site", "line", "machine"}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_do_not_overlap(name: str) -> None:
    boxes = [p["gridPos"] for p in DASHBOARDS[name]["panels"]]
    assert all(b["x"] >= 0 and b["x"] + b["w"] <= 24 and b["h"] > 0 for b in boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                     or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
            assert apart, (a, b)


def test_datasource_variants_are_influxql_with_the_dashboards_uid() -> None:
    files = {p.name: yaml.safe_load(p.read_text())["datasources"][0] for p in datasource_files()}
    assert set(files) == {"influxdb.yaml", "influxdb-v1.yaml"}
    for source in files.values():
        assert source["uid"] in provisioned_uids() and source["type"] == "influxdb"
        assert source["jsonData"]["version"] == "InfluxQL"
    token = files["influxdb.yaml"]
    assert token["jsonData"]["httpHeaderName1"] == "Authorization"
    assert token["secureJsonData"]["httpHeaderValue1"].startswith("Token ")
    password = files["influxdb-v1.yaml"]
    assert password["user"] and password["secureJsonData"]["password"]


def test_dashboard_provider_points_at_the_json_folder() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "shopfloor.yaml").read_text())
    (entry,) = provider["providers"]
    assert entry["type"] == "file" and entry["options"]["path"]


def test_build_and_check_commands(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shopfloor.cli import main

    built = CliRunner().invoke(main, ["dashboards", "build", "--out", str(tmp_path)])
    assert built.exit_code == 0, built.output
    assert {p.name: p.read_text() for p in tmp_path.glob("*.json")} == render_all()
    checked = CliRunner().invoke(main, ["dashboards", "check"])
    assert checked.exit_code == 0 and "up to date" in checked.output
