"""Builds the FastAPI application: `create_app(plant, settings)`. Clients (MQTT, InfluxDB)
are opened in the lifespan; API errors become JSON answers here and nowhere else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from shopfloor.api.config import ApiSettings
from shopfloor.api.downtime import routes as downtime
from shopfloor.api.errors import ApiError
from shopfloor.api.guard import KeyFirst
from shopfloor.api.metrics import ApiMetrics, MetricsMiddleware
from shopfloor.api.models.common import error_body
from shopfloor.api.operator import routes as operator
from shopfloor.api.routes import (
    alarm_actions,
    alarms,
    audit,
    commands,
    health,
    history,
    kpi,
    machines,
    wip,
)
from shopfloor.api.routes import plant as plant_routes
from shopfloor.api.runtime import close_runtime, open_runtime, start_link
from shopfloor.shared.plant import Plant

log = logging.getLogger(__name__)
DESCRIPTION = """Plant model, live state, history and KPIs of a shopfloor plant, and control
actions carried to the machines through their edge agents. Authenticate with the
`X-API-Key` header; docs/api.md lists which role may do what."""


def create_app(plant: Plant, settings: ApiSettings) -> FastAPI:
    """The application for `plant`; nothing connects until the lifespan starts."""
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = open_runtime(plant, settings, metrics)
        app.state.runtime = runtime
        await start_link(runtime)
        log.info("API for site %s ready (%d machines)", plant.site.id, len(plant.machines))
        if not settings.keys:
            log.warning("no API keys in the plant file: every /api/v1 request gets 401; "
                        "make one with `shopfloor api-key ROLE`")
        try:
            yield
        finally:
            await close_runtime(runtime)

    # /docs and /redoc with Swagger UI and ReDoc served from the installed fastapi-offline
    # package (under /static-offline-docs): they work on a plant network without internet.
    app = FastAPIOffline(title="shopfloor API", version="1", description=DESCRIPTION,
                         lifespan=lifespan, max_body_size=settings.max_body_bytes)
    for module in (plant_routes, machines, history, kpi, commands, wip, audit, downtime,
                   alarms, alarm_actions):
        app.include_router(module.router)
    app.include_router(health.router)
    app.include_router(operator.router)
    app.include_router(operator.page_router)
    app.mount("/operator/assets", operator.static_files(), name="operator-assets")
    app.add_middleware(KeyFirst, keys=settings.keys)  # no body read before the key
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _error_handlers(app)
    return app


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s", exc)
        return JSONResponse(error_body(exc.status, exc.code, exc.message), exc.status,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        body = error_body(422, "invalid_request", f"{where}: {first.get('msg')}")
        body["detail"] = jsonable_errors(exc)
        return JSONResponse(body, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not even decode the body (not UTF-8):
            # the same answer as any other body that is not JSON
            return JSONResponse(error_body(422, "invalid_request",
                                           "body: not valid JSON (UTF-8 expected)"), 422)
        code = {404: "not_found", 405: "method_not_allowed",
                413: "body_too_large"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(exc.status_code, code, str(exc.detail)), exc.status_code,
                            headers=getattr(exc, "headers", None))


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, object]]:
    """Validation errors without the input echoed back (it may hold a secret)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()]
