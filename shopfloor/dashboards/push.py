"""Create or update shopfloor's datasource, folder and dashboards on a running Grafana
through its HTTP API (grafana-client). Every step is an upsert: running it twice is safe.

grafana-client 3.x (requests) on purpose: >= 4 pulls in urllib3-future, which replaces
urllib3 for the whole venv (influxdb-client uses urllib3); see docs/dashboards.md."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException
from requests.exceptions import RequestException

from shopfloor.dashboards.panels_model import DATASOURCE_MIN_INTERVAL_MS
from shopfloor.dashboards.query import DATASOURCE_TYPE, DATASOURCE_UID
from shopfloor.shared.errors import ShopfloorError

log = logging.getLogger(__name__)

FOLDER_UID = "shopfloor"
FOLDER_TITLE = "shopfloor"
NOT_FOUND = 404


class GrafanaPushError(ShopfloorError):
    """Grafana refused a step of the push or could not be reached."""

    prefix = "grafana"


@dataclass(frozen=True)
class InfluxSource:
    """How Grafana reaches InfluxDB (its URL as Grafana sees it), and the credentials:
    a token (2.x/3.x, header `Authorization: Token ...`) or user/password (1.x)."""

    url: str
    database: str
    token: str | None = None
    user: str | None = None
    password: str | None = None


@dataclass
class PushReport:
    datasource: str = ""
    folder: str = ""
    dashboards: list[str] = field(default_factory=list)


def datasource_model(source: InfluxSource) -> dict[str, Any]:
    """The datasource as Grafana's API takes it; same settings as the provisioning file."""
    json_data: dict[str, Any] = {
        "version": "InfluxQL", "dbName": source.database, "httpMode": "POST",
        "timeInterval": f"{DATASOURCE_MIN_INTERVAL_MS // 1000}s",
    }
    secure: dict[str, str] = {}
    model: dict[str, Any] = {
        "name": "shopfloor InfluxDB", "uid": DATASOURCE_UID, "type": DATASOURCE_TYPE,
        "access": "proxy", "url": source.url, "isDefault": True,
    }
    if source.token:
        json_data["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = f"Token {source.token}"
    if source.user:
        model["user"] = source.user
        secure["password"] = source.password or ""
    return {**model, "jsonData": json_data, "secureJsonData": secure}


def _exists(call: Any, *args: Any) -> bool:
    try:
        call(*args)
    except GrafanaClientError as exc:
        if exc.status_code == NOT_FOUND:
            return False
        raise
    return True


def _upsert_datasource(api: GrafanaApi, model: dict[str, Any]) -> str:
    if _exists(api.datasource.get_datasource_by_uid, DATASOURCE_UID):
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, model)
        return "updated"
    api.datasource.create_datasource(model)
    return "created"


def _ensure_folder(api: GrafanaApi) -> str:
    if _exists(api.folder.get_folder, FOLDER_UID):
        return "exists"
    api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    return "created"


def _upload(api: GrafanaApi, dashboard: dict[str, Any]) -> str:
    body = {"dashboard": {**dashboard, "id": None}, "folderUid": FOLDER_UID,
            "overwrite": True, "message": "shopfloor dashboards push"}
    reply = api.dashboard.update_dashboard(body)
    return f"{dashboard['uid']} (version {reply.get('version', '?')})"


def push(
    api: GrafanaApi, source: InfluxSource, dashboards: dict[str, dict[str, Any]]
) -> PushReport:
    """Datasource, then folder, then every dashboard; GrafanaPushError names the step."""
    report = PushReport()
    step = "datasource"
    try:
        report.datasource = _upsert_datasource(api, datasource_model(source))
        step = "folder"
        report.folder = _ensure_folder(api)
        for name, dashboard in dashboards.items():
            step = f"dashboard {name}"
            report.dashboards.append(_upload(api, dashboard))
            log.info("pushed %s", name)
    except GrafanaException as exc:
        raise GrafanaPushError(f"{step}: {exc}") from exc
    except RequestException as exc:
        raise GrafanaPushError(f"{step}: cannot reach Grafana: {exc}") from exc
    return report


def connect(url: str, token: str, timeout_s: float = 10.0) -> GrafanaApi:
    """A client for Grafana at `url` authenticating with a service-account token."""
    return GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
