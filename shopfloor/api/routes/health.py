"""Operability: `/healthz` (broker and database) and `/metrics` (Prometheus text), both
without an API key, at the root (not versioned)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from shopfloor.api.deps import RuntimeDep
from shopfloor.api.errors import Unavailable

router = APIRouter(tags=["operations"])


class ComponentHealth(BaseModel):
    ok: bool
    detail: str = Field("", examples=["InfluxDB 1.6.7"])


class HealthOut(BaseModel):
    ok: bool
    broker: ComponentHealth
    database: ComponentHealth
    audit_pending: int = Field(description="audit entries not yet written to the database")


@router.get("/healthz", response_model=HealthOut, summary="Broker and database health",
            responses={503: {"model": HealthOut, "description": "something is down"}})
async def healthz(runtime: RuntimeDep) -> JSONResponse:
    """200 when the broker is connected and the database answers /ping, else 503."""
    broker = ComponentHealth(ok=runtime.mqtt.connected,
                             detail="connected" if runtime.mqtt.connected else "not connected")
    try:
        version = await runtime.influx.ping()
        database = ComponentHealth(ok=True, detail=f"InfluxDB {version}")
    except Unavailable as exc:
        database = ComponentHealth(ok=False, detail=exc.message)
    body = HealthOut(ok=broker.ok and database.ok, broker=broker, database=database,
                     audit_pending=runtime.audit.pending)
    return JSONResponse(body.model_dump(), 200 if body.ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(runtime: RuntimeDep) -> Response:
    runtime.metrics.broker_connected.set(1 if runtime.mqtt.connected else 0)
    runtime.metrics.audit_pending.set(runtime.audit.pending)
    for reason, count in runtime.live.refused.items():
        runtime.metrics.live_refused.labels(reason.value).set(count)
    runtime.metrics.live_unknown_values.set(runtime.live.unknown_values)
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
