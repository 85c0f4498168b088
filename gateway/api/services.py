"""What request handlers share within one worker process, opened and closed with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth import Authenticator
from gateway.backend import ModelBackend, TritonPool
from gateway.db import create_engine, session_factory
from gateway.db.revision import RevisionWatcher
from gateway.limits import RateLimiter, TierCatalog
from gateway.registry import Registry
from gateway.settings import Settings
from gateway.telemetry import Telemetry
from gateway.usage import MonthlyTokens, UsageRecorder


@dataclass
class Services:
    """This worker's settings, models, Triton servers, keys, limiter, usage, telemetry, database."""

    settings: Settings
    registry: Registry
    backend: ModelBackend
    auth: Authenticator
    catalog: TierCatalog
    limiter: RateLimiter
    recorder: UsageRecorder
    telemetry: Telemetry
    sessions: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def open_services(
    settings: Settings, telemetry: Telemetry | None = None, backend: ModelBackend | None = None
) -> AsyncIterator[Services]:
    """Open everything inside the worker's event loop; close it in reverse order.

    ``backend``: the models' backend (the Triton servers of the settings by default).
    Closing flushes what is still queued: usage records and keys' ``last_used``.
    """
    async with AsyncExitStack() as stack:
        if telemetry is None:
            telemetry = Telemetry(settings)
            stack.callback(telemetry.shutdown)
        if backend is None:
            backend = TritonPool(settings, telemetry)
        await backend.open()
        stack.push_async_callback(backend.close)
        registry = Registry(settings, backend.describe)
        await registry.ensure_described()

        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        sessions = session_factory(engine)
        watcher = RevisionWatcher(sessions, settings.config_poll_interval_s)
        auth = Authenticator(sessions, watcher, settings)
        catalog = TierCatalog(sessions, watcher)  # loads on the watcher's first poll
        await watcher.start()
        stack.push_async_callback(watcher.close)
        auth.start()
        stack.push_async_callback(auth.close)
        limiter = RateLimiter(settings, quota_baseline=MonthlyTokens(sessions))
        limiter.start()
        stack.push_async_callback(limiter.close)
        recorder = UsageRecorder(sessions, settings)
        recorder.start()
        stack.push_async_callback(recorder.close)
        yield Services(
            settings, registry, backend, auth, catalog, limiter, recorder, telemetry, sessions
        )
