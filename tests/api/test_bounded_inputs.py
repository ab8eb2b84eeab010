"""Bounded input types (api/models/common.py) over real HTTP: every field of every
control route's body (the actions on alarms included), given a value no field can
hold — infinity (`1e400`), NaN, a number wider than any point type, a bare epoch
number as a time, a time in year 9999 — gets 422 naming the field, never a 500, and
nothing is sent to the edge. The fields come from the models themselves, so a field
added later is covered too."""

from __future__ import annotations

import datetime as dt
import json
import typing
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from shopfloor.api.models.alarms import AckIn, ShelveIn, UnshelveIn
from shopfloor.api.models.control import ChangeoverIn, MaintenanceIn, SetpointIn, StocktakeIn
from tests.api.conftest import ApiEnv

ROUTES: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    ("/api/v1/machines/press1/setpoint", SetpointIn, {"point": "speed_pct", "value": 50}),
    ("/api/v1/machines/press1/changeover", ChangeoverIn, {"product": "A", "work_order": "W"}),
    ("/api/v1/machines/press1/maintenance", MaintenanceIn, {"on": False}),
    ("/api/v1/lines/line1/stocktake", StocktakeIn, {"count": 1, "buffers": {"press1": 1},
                                                    "at": "2026-01-01T00:00:00Z"}),
    ("/api/v1/alarms/press1/machine_stopped/ack", AckIn, {"comment": "x"}),
    ("/api/v1/alarms/press1/machine_stopped/shelve", ShelveIn,
     {"duration_s": 60, "reason": "x"}),
    ("/api/v1/alarms/press1/machine_stopped/unshelve", UnshelveIn, {"comment": "x"}),
]
NUMBERS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", str(10**30), str(-(10**30))]
TIMES = ["0", "1700000000", "1.7e9", '"1700000000"', '"9999-12-31T00:00:00Z"',
         '"1970-01-01T00:00:00Z"']
PLACEHOLDER = "__HOSTILE__"


def _is_time(model: type[BaseModel], field: str) -> bool:
    return "datetime" in str(model.model_fields[field].annotation)


def _body(model: type[BaseModel], base: dict[str, Any], field: str, token: str) -> str:
    """The base body with `field` (or the value inside a dict field) set to raw JSON."""
    body = dict(base)
    origin = typing.get_origin(model.model_fields[field].annotation)
    body[field] = {"press1": PLACEHOLDER} if origin is dict else PLACEHOLDER
    return json.dumps(body).replace(f'"{PLACEHOLDER}"', token)


CASES = [(path, field, token, _body(model, base, field, token))
         for path, model, base in ROUTES for field in model.model_fields
         for token in NUMBERS + (TIMES if _is_time(model, field) else [])]


def test_every_field_of_every_control_route_is_covered() -> None:
    covered = {(path, field) for path, field, _, _ in CASES}
    assert covered == {(p, f) for p, m, _ in ROUTES for f in m.model_fields}


@pytest.mark.parametrize(("path", "field", "token", "body"), CASES,
                         ids=[f"{p.rsplit('/', 1)[1]}.{f}={t}" for p, f, t, _ in CASES])
def test_unbounded_values_are_refused_naming_the_field(
        api_env: ApiEnv, admin: httpx.Client, path: str, field: str, token: str,
        body: str) -> None:
    before = len(api_env.edge.received)
    r = admin.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, (r.status_code, r.text)
    error = r.json()["error"]
    if error["code"] == "bad_time":  # the stocktake's own window (api/stocktake.py)
        assert error["message"].startswith(f"{field}: "), error
    else:
        assert error["code"] == "invalid_request" and f"body.{field}" in error["message"], error
    assert len(api_env.edge.received) == before


@pytest.mark.parametrize("value", ["0", "1700000000", "9999-12-31T00:00:00Z",
                                   "1970-01-01T00:00:00Z"])
@pytest.mark.parametrize("param", ["start", "end"])
def test_query_times_are_bounded(admin: httpx.Client, param: str, value: str) -> None:
    for url in ("/api/v1/machines/press1/states", "/api/v1/audit"):
        r = admin.get(url, params={param: value})
        assert r.status_code == 422, (url, r.text)
        assert f"query.{param}" in r.json()["error"]["message"]


def test_bounded_values_still_pass(admin: httpx.Client) -> None:
    now = dt.datetime.now(dt.UTC)
    r = admin.post("/api/v1/machines/press1/setpoint", json={"point": "speed_pct", "value": 60})
    assert r.status_code == 200, r.text
    r = admin.get("/api/v1/machines/press1/states",
                  params={"start": (now - dt.timedelta(hours=1)).isoformat()})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body", [b"\x80", b"\xff\xfe{", b"{\"point\": \"\xc3\x28\"}"],
                         ids=["lone-continuation", "bom-junk", "bad-utf8-in-string"])
@pytest.mark.parametrize("path", [p for p, _, _ in ROUTES])
def test_bodies_that_are_not_utf8_are_422_like_any_bad_json(
        api_env: ApiEnv, admin: httpx.Client, path: str, body: bytes) -> None:
    """FastAPI answers a body it cannot decode with 400, a body it can decode but not
    parse with 422: both are the same client error, and the contract says 422."""
    before = len(api_env.edge.received)
    r = admin.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"]["code"] == "invalid_request"
    assert len(api_env.edge.received) == before
