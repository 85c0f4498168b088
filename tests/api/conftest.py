"""The app in-process on a scripted backend, a migrated SQLite database and its keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.support.app import prepared_database
from tests.support.backend import ScriptedBackend

MODEL = "visiongate/tiny-random-llava"
T = TypeVar("T")


@dataclass
class Api:
    """One app, its client, its backend and its database."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    backend: ScriptedBackend
    database_url: str
    keys: dict[str, str]

    def auth(self, tier: str = "enterprise") -> dict[str, str]:
        """The Authorization header of the tier's key."""
        return {"authorization": f"Bearer {self.keys[tier]}"}

    async def post_elsewhere(self, body: dict[str, Any], tier: str) -> httpx.Response:
        """POST a chat from another thread, so that this loop stays free meanwhile.

        The test client's calls block the calling loop until the app (on its own loop, in
        a thread) has answered.
        """

        def post() -> httpx.Response:
            async def one() -> httpx.Response:
                url = "/v1/chat/completions"
                return await self.client.post(url, json=body, headers=self.auth(tier))

            return asyncio.run(one())

        return await asyncio.to_thread(post)

    async def in_app_loop(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` on the app's own loop (raw ASGI calls need its services)."""
        return await asyncio.to_thread(self.client.blocking_portal.call, work)


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """A migrated SQLite database with a key per tier, made once for the package."""
    path: Path = tmp_path_factory.mktemp("api") / "visiongate.db"
    url = f"sqlite+aiosqlite:///{path}"
    return url, prepared_database(url)


@pytest.fixture
def backend() -> ScriptedBackend:
    """A fresh scripted backend; tests change its script before calling."""
    return ScriptedBackend()


@pytest.fixture
async def api(database: tuple[str, dict[str, str]], backend: ScriptedBackend) -> AsyncIterator[Api]:
    """``create_app(settings)`` on the scripted backend, started and stopped per test."""
    url, keys = database
    settings = Settings(database_url=url, config_poll_interval_s=0.05)
    app = create_app(settings, backend=backend)
    async with AsyncTestClient(app) as client:
        yield Api(app, client, backend, url, keys)
