"""Grafana for `shopfloor local up`: where `grafana-server` is installed (Grafana's own
Debian repository; it is not in Debian), a configuration that serves our dashboards on
127.0.0.1:3000 with the run's InfluxDB as datasource; where not, one line saying how to
get it. The files are written under the run folder; the dashboards are read in place."""

from __future__ import annotations

import shutil
from pathlib import Path

from shopfloor.dashboards.files import DASHBOARD_DIR
from shopfloor.local.runner import RunDir

GRAFANA_PORT = 3000
HOMEPATHS = ("/usr/share/grafana",)
HOW_TO_GET = (
    "Grafana is not installed: add Grafana's Debian repository (https://apt.grafana.com, "
    "see https://grafana.com/docs/grafana/latest/setup-grafana/installation/debian/), "
    "`apt-get install grafana`, and run `./dev.sh up` again; the dashboards are in "
    f"{DASHBOARD_DIR}/ (provisioning: {DASHBOARD_DIR}/provisioning/, docs/dashboards.md)"
)


def binary() -> str | None:
    """The grafana-server program, if installed."""
    for candidate in (shutil.which("grafana-server"), "/usr/sbin/grafana-server"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def homepath() -> str | None:
    return next((h for h in HOMEPATHS if Path(h, "conf", "defaults.ini").exists()), None)


def datasource_yaml(influx_url: str, database: str) -> str:
    """InfluxDB 1.x datasource, InfluxQL, the uid the dashboards use."""
    return (
        "apiVersion: 1\n"
        "datasources:\n"
        "  - name: shopfloor InfluxDB\n"
        "    uid: shopfloor-influxdb\n"
        "    type: influxdb\n"
        "    access: proxy\n"
        f"    url: {influx_url}\n"
        "    isDefault: true\n"
        "    editable: false\n"
        "    jsonData:\n"
        "      version: InfluxQL\n"
        f"      dbName: {database}\n"
        "      httpMode: POST\n"
        "      timeInterval: 10s\n"
    )


def dashboards_yaml(dashboard_dir: Path) -> str:
    """A file provider over the repository's dashboards/ folder (folder "shopfloor")."""
    return (
        "apiVersion: 1\n"
        "providers:\n"
        "  - name: shopfloor\n"
        "    orgId: 1\n"
        "    folder: shopfloor\n"
        "    folderUid: shopfloor\n"
        "    type: file\n"
        "    allowUiUpdates: false\n"
        "    updateIntervalSeconds: 30\n"
        "    options:\n"
        f"      path: {dashboard_dir}\n"
        "      foldersFromFilesStructure: false\n"
    )


def grafana_ini(root: Path, port: int = GRAFANA_PORT) -> str:
    """Loopback only, data/logs/plugins under `root`, anonymous viewers (a local demo),
    no phoning home."""
    return (
        f"[paths]\ndata = {root}/data\nlogs = {root}/logs\nplugins = {root}/plugins\n"
        f"provisioning = {root}/provisioning\n"
        f"[server]\nhttp_addr = 127.0.0.1\nhttp_port = {port}\n"
        "[analytics]\nreporting_enabled = false\ncheck_for_updates = false\n"
        "check_for_plugin_updates = false\n"
        "[auth.anonymous]\nenabled = true\norg_role = Viewer\n"
        "[dashboards]\ndefault_home_dashboard_path = "
        f"{DASHBOARD_DIR}/plant-overview.json\n"
        "[log]\nmode = file\n"
    )


def write_config(run: RunDir, influx_url: str, database: str,
                 dashboard_dir: Path = DASHBOARD_DIR, port: int = GRAFANA_PORT) -> Path:
    """Write grafana.ini and the provisioning files under run/grafana; returns the ini."""
    root = run.root / "grafana"
    for sub in ("data", "logs", "plugins", "provisioning/datasources",
                "provisioning/dashboards", "provisioning/plugins", "provisioning/alerting"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "provisioning/datasources/shopfloor.yaml").write_text(
        datasource_yaml(influx_url, database))
    (root / "provisioning/dashboards/shopfloor.yaml").write_text(dashboards_yaml(dashboard_dir))
    ini = root / "grafana.ini"
    ini.write_text(grafana_ini(root, port))
    return ini
