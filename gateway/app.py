"""The Litestar application: ``create_app(settings)`` is the one place things are wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol

from gateway.admin_api import admin_openapi, admin_router
from gateway.api.chat import ChatController
from gateway.api.health import HealthController
from gateway.api.models import ModelsController
from gateway.api.organization import OrganizationController
from gateway.api.responses import ResponsesController
from gateway.api.services import open_services
from gateway.backend import ModelBackend
from gateway.errors import handle_exception
from gateway.playground import playground_router
from gateway.settings import Settings
from gateway.telemetry import Telemetry
from gateway.telemetry.http import MetricsController, telemetry_middleware

log = logging.getLogger("visiongate.app")


class GatewayPlugin(InitPluginProtocol):
    """Registers the controllers, the error mapping, and the per-worker services."""

    def __init__(
        self, settings: Settings, telemetry: Telemetry, backend: ModelBackend | None = None
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.backend = backend

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add visiongate's parts to the app being built."""
        app_config.route_handlers.extend(
            [
                ChatController,
                ResponsesController,
                ModelsController,
                OrganizationController,
                HealthController,
                MetricsController,
                playground_router,
                admin_router,
                admin_openapi,
            ]
        )
        # Request id, server span and request metrics around every routed request.
        app_config.middleware.insert(0, telemetry_middleware(self.telemetry))  # type: ignore[arg-type]
        # One handler for every exception type keeps every error body OpenAI-shaped.
        app_config.exception_handlers[Exception] = handle_exception
        app_config.lifespan.append(self._services)
        app_config.request_max_body_size = self.settings.max_request_body_bytes
        return app_config

    @asynccontextmanager
    async def _services(self, app: Litestar) -> AsyncIterator[None]:
        """Open this worker's services inside its event loop; flush and close them at exit."""
        async with open_services(self.settings, self.telemetry, self.backend) as services:
            app.state.services = services
            models = [entry.id for entry in services.registry.entries]
            log.info(
                "gateway ready: models %s, limits %s", models, services.limiter.health().backend
            )
            yield
            log.info("gateway stopping: flushing usage records and telemetry")
        # After the services closed (usage committed): export the last spans and metrics.
        self.telemetry.shutdown()


def create_app(
    settings: Settings | None = None,
    telemetry: Telemetry | None = None,
    backend: ModelBackend | None = None,
) -> Litestar:
    """Build the gateway for ``settings`` (from VISIONGATE_* environment variables by default).

    ``telemetry``: the tracer and instruments to use (tests pass in-memory exporters).
    ``backend``: the models' backend; by default the Triton servers the settings name.
    """
    settings = settings or Settings()
    telemetry = telemetry or Telemetry(settings)
    return Litestar(
        plugins=[GatewayPlugin(settings, telemetry, backend)],
        openapi_config=None,
        # Logging is configured once per process by `serve` (JSON lines, gateway/telemetry).
        logging_config=None,
        debug=False,
    )
