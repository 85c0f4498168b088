"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can serve requests).

Readiness checks what a request needs: Triton's models, the database (keys and usage
records) and the rate limiter. The JSON names each check, so an operator sees why::

    {"status": "degraded",
     "checks": {"triton": {"ready": true, "detail": "ok"},
                "database": {"ready": true, "detail": "ok"},
                "limiter": {"ready": true, "backend": "in-process", "redis_configured": true,
                            "redis_reachable": false, "fail_closed": false,
                            "degraded_admissions": 12, "detail": "Redis unreachable: ..."}}}

``ready``: all is well. ``degraded``: Redis is unreachable and the limiter fails open, so
each worker limits on its own; still 200, the worker serves. Anything not ready is a 503
with ``retry-after`` and an OpenAI-shaped ``error`` next to the same ``checks``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get

from gateway.api.rate_limits import LimiterDown
from gateway.api.services import Services
from gateway.errors import ApiError, DatabaseUnavailable

# How long /readyz waits for the database's answer.
DATABASE_TIMEOUT_S = 2.0

_encode = msgspec.json.Encoder().encode


async def _triton(services: Services) -> tuple[dict[str, Any], ApiError | None]:
    for entry in services.registry.entries:
        if not await services.backend.ready(entry.triton_model):
            why = f"Triton model {entry.triton_model} is not ready"
            check = {"ready": False, "detail": why, "servers": services.backend.health()}
            return check, services.backend.unavailable(why)
    await services.registry.ensure_described()
    # Each Triton server's state (several: VISIONGATE_TRITON_URL as a list); one is enough.
    return {"ready": True, "detail": "ok", "servers": services.backend.health()}, None


async def _database(services: Services) -> tuple[dict[str, Any], ApiError | None]:
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S):
            await services.recorder.ping()
    except Exception as exc:  # any failure to answer means not ready
        detail = f"database unreachable: {type(exc).__name__}: {exc}"[:500]
        error = DatabaseUnavailable(retry_after_s=services.settings.retry_after_s)
        return {"ready": False, "detail": detail}, error
    return {"ready": True, "detail": "ok"}, None


async def _limiter(services: Services) -> tuple[dict[str, Any], ApiError | None, bool]:
    await services.limiter.probe()
    health = services.limiter.health()
    check = {"ready": health.ready, **dataclasses.asdict(health)}
    degraded = health.ready and health.redis_configured and not health.redis_reachable
    if health.ready:
        return check, None, degraded
    error = LimiterDown(services.settings.retry_after_s)
    return check, error, degraded


class HealthController(Controller):
    """Liveness and readiness probes."""

    @get("/healthz")
    async def healthz(self) -> Response[bytes]:
        """Always 200 while the process serves HTTP."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    @get("/readyz")
    async def readyz(self, request: Request) -> Response[bytes]:
        """200 (``ready`` or ``degraded``) when requests can be served; else 503 + retry-after."""
        services: Services = request.app.state.services
        triton, triton_error = await _triton(services)
        database, database_error = await _database(services)
        limiter, limiter_error, degraded = await _limiter(services)
        checks = {"triton": triton, "database": database, "limiter": limiter}
        error = triton_error or database_error or limiter_error
        if error is None:
            body = {"status": "degraded" if degraded else "ready", "checks": checks}
            return Response(_encode(body), media_type="application/json")
        body = {**msgspec.to_builtins(error.body()), "status": "unavailable", "checks": checks}
        return Response(
            _encode(body),
            status_code=error.status_code,
            media_type="application/json",
            headers=error.headers,
        )
