"""``GET /healthz`` (the process answers) and ``GET /readyz`` (Triton's models are ready)."""

from __future__ import annotations

from litestar import Controller, Request, Response, get

from gateway.api.services import Services


class HealthController(Controller):
    """Liveness and readiness probes."""

    @get("/healthz")
    async def healthz(self) -> Response[bytes]:
        """Always 200 while the process serves HTTP."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    @get("/readyz")
    async def readyz(self, request: Request) -> Response[bytes]:
        """200 when every registered Triton model is ready; otherwise a 503 with retry-after."""
        services: Services = request.app.state.services
        for entry in services.registry.entries:
            if not await services.backend.ready(entry.triton_model):
                why = f"Triton model {entry.triton_model} is not ready"
                raise services.backend.unavailable(why)
        await services.registry.describe(services.backend.describe)
        return Response(b'{"status":"ready"}', media_type="application/json")
