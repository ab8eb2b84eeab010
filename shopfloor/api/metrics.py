"""The API's own Prometheus metrics, in a registry per app: requests by route template and
status, request latency, commands by action and outcome. Served by a plain `/metrics`
route (a mounted ASGI app would answer `/metrics` with a 307 redirect)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"  # route label of requests no route matched (bounded cardinality)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("shopfloor_api_requests_total", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("shopfloor_api_request_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.commands = Counter("shopfloor_api_commands_total", "commands by outcome",
                                ["action", "outcome"], registry=self.registry)
        self.refused = Counter("shopfloor_api_refused_total", "actions refused before sending",
                               ["action", "code"], registry=self.registry)
        self.results_dropped = Counter(
            "shopfloor_api_results_dropped_total", "command results that did not count "
            "(wrong topic, no such command, flood overflow, ...)", ["reason"],
            registry=self.registry)
        self.audit_pending = Gauge("shopfloor_api_audit_pending", "audit entries not yet written",
                                   registry=self.registry)
        self.live_refused = Gauge("shopfloor_api_live_refused", "telemetry the live view "
                                  "refused by the admission rule, since start", ["reason"],
                                  registry=self.registry)
        self.live_unknown_values = Gauge("shopfloor_api_live_unknown_values", "telemetry "
                                         "value keys that are not points (dropped), since "
                                         "start", registry=self.registry)
        self.broker_connected = Gauge("shopfloor_api_broker_connected", "1 when connected",
                                      registry=self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): counts and times requests
    by the matched route's template (`/api/v1/machines/{machine}`), never the raw path."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_label(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status["code"])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED
