"""The operator page (`GET /operator`, plain HTML/CSS/JS from the package: no CDN, no
build step) and what it reads: a line's andon board, as a snapshot and as a stream of
server-sent events fed by the live view (retained MQTT state and KPIs)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from shopfloor.api.deps import LineDep, PlantDep, ReaderDep, RuntimeDep
from shopfloor.api.live import LiveView
from shopfloor.api.models.common import ERRORS, NOT_FOUND
from shopfloor.api.operator.andon import AndonHub, AndonOut, board, tile
from shopfloor.api.routes import PREFIX
from shopfloor.shared.plant import Line, Plant

STATIC = resources.files("shopfloor.api") / "static"
CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""The page loads and talks to nothing but this API, no inline script: the key in the
tab's session storage is out of reach of injected markup, and a CDN could not load."""
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing an idle stream

router = APIRouter(prefix=PREFIX, tags=["operator"], responses={**ERRORS, **NOT_FOUND})
page_router = APIRouter(tags=["operator"])


def static_files() -> StaticFiles:
    """/operator/assets: the page's CSS and JS, from the installed package."""
    return StaticFiles(directory=str(STATIC))


@page_router.get("/operator", response_class=HTMLResponse, summary="The operator page")
async def operator_page() -> HTMLResponse:
    """The andon board and downtime classification for a line, in the browser. Needs no
    key to load; it asks for one and sends it with every API call (docs/operator.md)."""
    return HTMLResponse((STATIC / "operator.html").read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP})


async def get_hub(runtime: RuntimeDep) -> AndonHub:
    hub = runtime.andon
    assert hub is not None  # set in open_runtime
    return hub


HubDep = Annotated[AndonHub, Depends(get_hub)]


@router.get("/lines/{line}/andon", response_model=AndonOut, summary="A line's andon board")
async def line_andon(plant: PlantDep, runtime: RuntimeDep, principal: ReaderDep,
                     line: LineDep) -> AndonOut:
    """Each machine of the line: state and since when, product, order, shift OEE so far,
    parts vs target (from the collector's retained KPIs)."""
    return board(plant, runtime.live, line)


@router.get("/lines/{line}/andon/stream", summary="A line's andon board, live",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "server-sent events: `board`, then `tile`"}})
async def line_andon_stream(
    plant: PlantDep, runtime: RuntimeDep, hub: HubDep, principal: ReaderDep, line: LineDep,
    max_s: Annotated[float, Query(gt=0, le=86_400, description="close the stream after "
                                  "this long (the page reconnects)")] = 3600,
) -> StreamingResponse:
    """Server-sent events: one `board` event (all tiles), then a `tile` event for each
    machine whose state, KPIs or agent changed, as soon as the API hears of it."""
    return StreamingResponse(_events(plant, runtime.live, hub, line, max_s),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(plant: Plant, live: LiveView, hub: AndonHub, line: Line,
                  max_s: float) -> AsyncIterator[str]:
    mine = {m for m, spec in plant.machines.items() if spec.line == line.id}
    sub = hub.subscribe()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    try:
        yield _sse("board", board(plant, live, line).model_dump_json())
        while (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(HEARTBEAT_S, left)):
                    await sub.wake.wait()
            changed = sub.take() & mine
            if not changed:
                yield ": heartbeat\n\n"
            for machine in sorted(changed):
                yield _sse("tile", tile(plant, live, machine).model_dump_json())
    finally:
        hub.unsubscribe(sub)


def _sse(event: str, data: str) -> str:
    assert "\n" not in data  # JSON without indentation is one line
    return f"event: {event}\ndata: {data}\n\n"

