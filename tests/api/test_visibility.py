"""What a line-restricted key may not see does not exist for it: every route that takes a
machine, a line or a command id (in the path or as a query filter) answers one of another
line exactly like an unknown one (same status, code and message), never a 403 that would
confirm it exists. The routes come from the running API's OpenAPI document, so a new route
is covered without touching this file; a new kind of path parameter fails until this file
knows a hidden and an unknown value for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shopfloor.shared import topics
from tests.api.conftest import ApiEnv
from tests.api.harness import RESTRICTED, RESTRICTED_ADMIN, iso, wait_for
from tests.api.test_auth import BODIES

# Both restricted keys see only line2 (machine solo1).
VISIBLE = {"machine": "solo1", "line": "line2"}
UNKNOWN = {"machine": "nosuchmachine", "line": "nosuchline", "command_id": "no-such-command",
           "event_id": "nosuchmachine:1764720000000"}
FILTERS = ("machine", "line")  # query parameters that name a machine or a line
FIXED = {"rule": "machine_stopped"}  # path parameters no line hides: always a valid value


@pytest.fixture(scope="module")
def hidden(api_env: ApiEnv) -> dict[str, str]:
    """Values that exist but belong to line1: a machine, the line, a command sent there
    and a downtime event (pack1 stopped for an hour)."""
    with api_env.client("admin") as admin:
        sent = admin.post("/api/v1/machines/pack1/stop")
        assert sent.status_code == 200, sent.text
        since = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
        api_env.edge.publish(
            topics.machine_topic(api_env.site, "line1", "pack1", topics.STATE),
            {"v": 1, "ts": iso(since), "state": "stopped", "since": iso(since)}, retain=True)
        event = f"pack1:{int(since.timestamp() * 1000)}"
        wait_for(lambda: admin.get(f"/api/v1/downtime/events/{event}").status_code == 200,
                 what="the downtime event of pack1")
    return {"machine": "pack1", "line": "line1", "command_id": sent.json()["commands"][0]["id"],
            "event_id": event}


def operations(spec: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    return [(method.upper(), path, op.get("parameters", []))
            for path, ops in spec["paths"].items() for method, op in ops.items()]


def _call(client: httpx.Client, method: str, path: str, ask: Ask) -> httpx.Response:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    body = BODIES.get(last, {}) if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path.format(**ask.path_values), params=ask.query, json=body)


def _answer(response: httpx.Response, value: str) -> tuple[int, Any]:
    """Status and error body, with the asked-for value masked in the message."""
    body = response.json() if response.headers.get("content-type", "").startswith(
        "application/json") else response.text
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = dict(body["error"])
        error["message"] = str(error.get("message", "")).replace(value, "<asked>")
        body = {**body, "error": error}
    return response.status_code, body


@dataclass(frozen=True)
class Ask:
    """One request: path parameters, query, and the value asked about (masked)."""

    path_values: dict[str, str]
    query: dict[str, str]
    value: str


def _cases(spec: dict[str, Any], hidden: dict[str, str]) -> list[tuple[str, str, Ask, Ask]]:
    """(method, path, asking for a hidden id, asking for an unknown id) for every place a
    route takes a machine, line or command id. Fails on an unknown path parameter."""
    cases = []
    for method, path, params in operations(spec):
        in_path = [p["name"] for p in params if p["in"] == "path"]
        unknown_kind = [n for n in in_path if n not in UNKNOWN and n not in FIXED]
        assert not unknown_kind, f"{method} {path}: teach this test about {unknown_kind}"
        base = {n: FIXED[n] if n in FIXED else VISIBLE.get(n, UNKNOWN[n]) for n in in_path}
        for name in (n for n in in_path if n not in FIXED):
            cases.append((method, path, Ask({**base, name: hidden[name]}, {}, hidden[name]),
                          Ask({**base, name: UNKNOWN[name]}, {}, UNKNOWN[name])))
        for name in [p["name"] for p in params if p["in"] == "query" and p["name"] in FILTERS]:
            cases.append((method, path, Ask(base, {name: hidden[name]}, hidden[name]),
                          Ask(base, {name: UNKNOWN[name]}, UNKNOWN[name])))
    return cases


def test_every_route_hides_other_lines_like_unknown_ids(api_env: ApiEnv,
                                                        hidden: dict[str, str]) -> None:
    with api_env.client("admin") as admin:
        spec = admin.get("/openapi.json").json()
    cases = _cases(spec, hidden)
    checked = {(method, path) for method, path, _, _ in cases}
    assert {("GET", "/api/v1/machines/{machine}"), ("POST", "/api/v1/machines/{machine}/start"),
            ("GET", "/api/v1/lines/{line}/wip"), ("GET", "/api/v1/commands/{command_id}"),
            ("GET", "/api/v1/downtime/events/{event_id}"), ("GET", "/api/v1/downtime/events"),
            ("GET", "/api/v1/audit"), ("GET", "/api/v1/state")} <= checked
    problems = []
    for key in (RESTRICTED_ADMIN, RESTRICTED):
        with api_env.client(key) as client:
            for method, path, secret, unknown in cases:
                seen = _answer(_call(client, method, path, secret), secret.value)
                like = _answer(_call(client, method, path, unknown), unknown.value)
                where = f"{key} {method} {path} {secret}"
                if seen != like:
                    problems.append(f"{where}: {seen} but unknown gives {like}")
                elif key == RESTRICTED_ADMIN and seen[0] != 404:
                    problems.append(f"{where}: {seen[0]}, not 404")
    assert not problems, "\n".join(problems)


def test_own_line_still_answers(api_env: ApiEnv, hidden: dict[str, str]) -> None:
    """The check hides only other lines: the key's own machine, line and commands answer."""
    with api_env.client(RESTRICTED_ADMIN) as client:
        assert client.get("/api/v1/machines/solo1").status_code == 200
        assert client.get("/api/v1/lines/line2/wip").status_code == 200
        assert client.get("/api/v1/state", params={"line": "line2"}).status_code == 200
        own = client.post("/api/v1/machines/solo1/stop")
        assert own.status_code == 200, own.text
        command = own.json()["commands"][0]["id"]
        assert client.get(f"/api/v1/commands/{command}").status_code == 200
    with api_env.client("admin") as admin:  # unrestricted: sees line1's command
        assert admin.get(f"/api/v1/commands/{hidden['command_id']}").status_code == 200
