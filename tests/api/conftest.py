"""The app in-process on a scripted backend, a migrated SQLite database and its keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.support.app import Api, prepared_database
from tests.support.backend import ScriptedBackend


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
