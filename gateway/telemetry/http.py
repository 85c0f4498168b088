"""The request's telemetry at the HTTP edge: id, server span, request metrics, ``/metrics``."""

from __future__ import annotations

import time

from litestar import Controller, Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway.telemetry.context import new_request, reset_current, set_current
from gateway.telemetry.metrics import prometheus_exposition
from gateway.telemetry.setup import Telemetry

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_HEADER_RAW = REQUEST_ID_HEADER.encode()
# Probes are counted but not traced: a span every few seconds per load balancer is noise.
_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def telemetry_middleware(telemetry: Telemetry) -> object:
    """Litestar middleware factory: wraps every routed request."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            method = scope["method"]  # type: ignore[typeddict-item]  # http, checked above
            started = time.perf_counter()
            incoming = None
            for name, value in scope["headers"]:
                if name == _REQUEST_ID_HEADER_RAW:
                    incoming = value.decode("latin-1")
            info = new_request(incoming)
            token = set_current(info)
            route = scope.get("path_template") or scope["path"]
            status = 500

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    # Appended: nothing else sets it (cheaper than a header-rewriting view).
                    header = (_REQUEST_ID_HEADER_RAW, info.request_id.encode("latin-1"))
                    message["headers"] = [*message.get("headers", ()), header]
                await send(message)

            span = None
            if telemetry.tracing and route not in _UNTRACED:
                span = telemetry.tracer.start_span(
                    f"{method} {route}",
                    kind=SpanKind.SERVER,
                    attributes={
                        "http.request.method": method,
                        "http.route": route,
                        "visiongate.request_id": info.request_id,
                    },
                )
            try:
                if span is None:
                    await app(scope, receive, send_with_id)
                else:
                    with trace.use_span(span, end_on_exit=False):
                        await app(scope, receive, send_with_id)
            finally:
                duration = time.perf_counter() - started
                if span is not None:
                    span.set_attribute("http.response.status_code", status)
                    if info.model:
                        span.set_attributes(
                            {
                                "gen_ai.operation.name": "chat",
                                "gen_ai.request.model": info.model,
                                "gen_ai.usage.input_tokens": info.input_tokens,
                                "gen_ai.usage.output_tokens": info.output_tokens,
                                "visiongate.organization": info.org,
                                "visiongate.tier": info.tier,
                            }
                        )
                    if info.ttft_s is not None:
                        span.set_attribute("gen_ai.server.time_to_first_token", info.ttft_s)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    span.end()
                telemetry.metrics.request(
                    route,
                    status,
                    info.model,
                    info.tier,
                    duration,
                    info.ttft_s,
                    info.input_tokens,
                    info.output_tokens,
                )
                if info.media_rejection:
                    telemetry.metrics.media_rejected(info.media_rejection)
                reset_current(token)

        return middleware

    return factory


class MetricsController(Controller):
    """Prometheus' scrape endpoint."""

    @get("/metrics")
    async def metrics(self, request: Request) -> Response[bytes]:
        """Every worker's metrics in Prometheus' text format."""
        services = request.app.state.services
        health = services.limiter.health()
        services.telemetry.metrics.limiter(health.degraded_admissions, health.redis_reachable)
        body, content_type = prometheus_exposition()
        return Response(body, media_type=content_type)
