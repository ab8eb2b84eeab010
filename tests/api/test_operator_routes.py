"""The operator page's routes over HTTP on the real API and mosquitto: the page and its
assets from the package (with a content security policy that allows nothing but this
API), the andon board from the retained state and KPI topics, and its stream of
server-sent events (a state published on MQTT arrives as a `tile` event)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from shopfloor.api.server import GRACEFUL_SHUTDOWN_S
from shopfloor.shared import topics
from tests.api.conftest import ApiEnv
from tests.api.harness import COMMAND_TIMEOUT_S, ApiProcess, iso, wait_for


def test_page_and_assets_come_from_the_package(api_env: ApiEnv) -> None:
    with api_env.client(None) as anon:
        page = anon.get("/operator")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for asset, kind in (("operator.js", "javascript"), ("operator-alarms.js", "javascript"),
                            ("operator.css", "text/css")):
            assert f"/operator/assets/{asset}" in page.text
            got = anon.get(f"/operator/assets/{asset}")
            assert got.status_code == 200 and kind in got.headers["content-type"]
        assert "http" not in page.text.replace("http-equiv", "")  # no outside URL
        assert anon.get("/operator/assets/").status_code == 404  # no listing
        assert anon.get("/api/v1/lines/line1/andon").status_code == 401


def _kpi(machine: str) -> dict[str, Any]:
    return {"v": 1, "machine": machine, "line": "line1", "ts": iso(dt.datetime.now(dt.UTC)),
            "shift": {"shift": "early", "start": "2026-12-03T06:00:00Z", "oee": 0.5,
                      "pq": 100.0, "nrt_s": 200.0, "pbt_obs_s": 600.0}}


def test_board_from_retained_state_and_kpis(api_env: ApiEnv, admin: httpx.Client) -> None:
    site, edge = api_env.site, api_env.edge
    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    edge.publish(topics.machine_topic(site, "line1", "weld1", topics.STATE),
                 {"v": 1, "ts": iso(since), "state": "setup", "reason": "changeover",
                  "product": "B", "work_order": "WO-7", "since": iso(since)}, retain=True)
    edge.publish(topics.machine_topic(site, "line1", "weld1", topics.KPI), _kpi("weld1"),
                 retain=True)
    edge.publish(topics.machine_topic(site, "line1", "paint1", topics.KPI), {"v": 1},
                 retain=True)  # not a KPI message of paint1: ignored

    def weld() -> dict[str, Any] | None:
        board = admin.get("/api/v1/lines/line1/andon").json()
        tile = next(t for t in board["tiles"] if t["machine"] == "weld1")
        return tile if tile["oee"] is not None and tile["state"] == "setup" else None

    tile = wait_for(weld, what="weld1's tile")
    assert (tile["state"], tile["reason"], tile["product"], tile["work_order"]) == (
        "setup", "changeover", "B", "WO-7")
    assert (tile["oee"], tile["parts"], tile["target"], tile["shift"]) == (0.5, 100, 300,
                                                                           "early")
    board = admin.get("/api/v1/lines/line1/andon").json()
    assert [t["machine"] for t in board["tiles"]] == ["press1", "weld1", "paint1", "pack1"]
    assert next(t for t in board["tiles"] if t["machine"] == "paint1")["oee"] is None
    assert admin.get("/api/v1/lines/nope/andon").status_code == 404


def test_stream_sends_the_board_then_each_change(api_env: ApiEnv) -> None:
    site, edge = api_env.site, api_env.edge
    events: list[tuple[str, dict[str, Any]]] = []

    def listen() -> None:
        with api_env.client("viewer") as viewer, viewer.stream(
                "GET", "/api/v1/lines/line1/andon/stream", params={"max_s": 8}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))

    reader = threading.Thread(target=listen)
    reader.start()
    wait_for(lambda: events, what="the board event")
    assert events[0][0] == "board" and len(events[0][1]["tiles"]) == 4
    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    edge.publish(topics.machine_topic(site, "line1", "pack1", topics.STATE),
                 {"v": 1, "ts": iso(since), "state": "stopped", "reason": "jam",
                  "since": iso(since)}, retain=True)
    edge.publish(topics.machine_topic(site, "line2", "solo1", topics.STATE),
                 {"v": 1, "ts": iso(since), "state": "stopped", "since": iso(since)},
                 retain=True)  # another line: not in this stream
    tiles = wait_for(lambda: [d for n, d in events if n == "tile"], what="a tile event")
    assert [(t["machine"], t["state"], t["reason"]) for t in tiles] == [
        ("pack1", "stopped", "jam")]
    reader.join(15)  # the stream ends after max_s
    assert not reader.is_alive()
    assert all(d["machine"] != "solo1" for n, d in events if n == "tile")


def test_api_stops_promptly_with_a_stream_open(mosquitto: Any, influxdb: Any,
                                               tmp_path: Path) -> None:
    """SIGTERM with an operator page's stream open (for an hour): the API still exits by
    itself within its graceful-shutdown time, not by SIGKILL."""
    rig = ApiProcess.create(tmp_path, mosquitto.port, influxdb.url, COMMAND_TIMEOUT_S)
    try:
        rig.api.start()
        opened = threading.Event()

        def listen() -> None:
            with contextlib.suppress(httpx.HTTPError), rig.client("viewer") as viewer, \
                    viewer.stream("GET", "/api/v1/lines/line1/andon/stream",
                                  params={"max_s": 3600}) as response:
                for _line in response.iter_lines():
                    opened.set()

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        assert opened.wait(10)
        began = time.monotonic()
        code = rig.api.stop(timeout_s=GRACEFUL_SHUTDOWN_S + 10)
        assert code in (0, -15), rig.api.log_tail()  # uvicorn re-raises SIGTERM: not -9
        assert time.monotonic() - began < GRACEFUL_SHUTDOWN_S + 5
        reader.join(10)
    finally:
        rig.close()
