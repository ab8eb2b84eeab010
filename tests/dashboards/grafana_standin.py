"""A small HTTP server answering as Grafana's documented HTTP API does for the calls
`shopfloor dashboards push` makes (datasources by uid, folders, dashboards/db), with
bearer-token auth. THE ONE STAND-IN OF THIS PROJECT: no Grafana server installs on these
machines, so the push command is tested against this instead of a real Grafana.

Reference: https://grafana.com/docs/grafana/latest/developers/http_api/ (data_source,
folder, dashboard): 404 {"message": ...} for a missing uid, 409 for a duplicate
datasource or folder, 412 for a dashboard uid that exists without overwrite, 400 for a
missing folder, 401 without a valid token."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class GrafanaState:
    def __init__(self, token: str) -> None:
        self.token = token
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []


Reply = tuple[int, dict[str, Any]]


def _get(state: GrafanaState, path: str) -> Reply:
    if m := re.fullmatch(r"/api/datasources/uid/([\w-]+)", path):
        found = state.datasources.get(m[1])
        return (200, found) if found else (404, {"message": "Data source not found"})
    if m := re.fullmatch(r"/api/folders/([\w-]+)", path):
        found = state.folders.get(m[1])
        return (200, found) if found else (404, {"message": "folder not found"})
    return 404, {"message": "Not found"}


def _post_datasource(state: GrafanaState, body: dict[str, Any]) -> Reply:
    if any(d["name"] == body.get("name") or d["uid"] == body.get("uid")
           for d in state.datasources.values()):
        return 409, {"message": "data source with the same name already exists"}
    datasource = {**body, "id": len(state.datasources) + 1}
    state.datasources[body["uid"]] = datasource
    return 200, {"datasource": datasource, "id": datasource["id"], "message": "Datasource added"}


def _post_folder(state: GrafanaState, body: dict[str, Any]) -> Reply:
    uid = body.get("uid") or f"f{len(state.folders) + 1}"
    if uid in state.folders:
        return 409, {"message": "a folder with the same uid already exists"}
    state.folders[uid] = {"uid": uid, "title": body["title"], "id": len(state.folders) + 1}
    return 200, state.folders[uid]


def _post_dashboard(state: GrafanaState, body: dict[str, Any]) -> Reply:
    dashboard = body.get("dashboard") or {}
    uid = dashboard.get("uid")
    if not uid or not dashboard.get("title"):
        return 400, {"message": "Dashboard title cannot be empty"}
    if body.get("folderUid") and body["folderUid"] not in state.folders:
        return 400, {"message": "folder not found"}
    old = state.dashboards.get(uid)
    if old and not body.get("overwrite"):
        return 412, {"message": "A dashboard with the same uid already exists",
                     "status": "name-exists"}
    version = (old["version"] + 1) if old else 1
    state.dashboards[uid] = {"dashboard": dashboard, "folderUid": body.get("folderUid"),
                             "version": version}
    return 200, {"id": len(state.dashboards), "uid": uid, "status": "success",
                 "url": f"/d/{uid}", "version": version}


def _write(state: GrafanaState, method: str, path: str, body: dict[str, Any]) -> Reply:
    if method == "POST" and path == "/api/datasources":
        return _post_datasource(state, body)
    if method == "PUT" and (m := re.fullmatch(r"/api/datasources/uid/([\w-]+)", path)):
        if m[1] not in state.datasources:
            return 404, {"message": "Data source not found"}
        state.datasources[m[1]] = {**body, "id": state.datasources[m[1]]["id"]}
        return 200, {"datasource": state.datasources[m[1]], "message": "Datasource updated"}
    if method == "POST" and path == "/api/folders":
        return _post_folder(state, body)
    if method == "POST" and path == "/api/dashboards/db":
        return _post_dashboard(state, body)
    return 404, {"message": "Not found"}


def handler_for(state: GrafanaState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            state.requests.append((method, self.path))
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._reply(401, {"message": "Unauthorized"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if method == "GET":
                self._reply(*_get(state, self.path))
            else:
                self._reply(*_write(state, method, self.path, body))

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class GrafanaStandIn:
    """Serve on a free loopback port in a thread; `url`, `state`, `close()`."""

    def __init__(self, token: str) -> None:
        self.state = GrafanaState(token)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self.state))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
