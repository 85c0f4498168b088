"""One `visiongate serve --workers 2` per database (SQLite, PostgreSQL) for the admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.triton_process import EmbeddedTriton
from tests.support.admin import AdminStack, admin_stack
from tests.support.services import require_redis
from tests.support.stack import STACKS


@pytest.fixture(scope="package", params=STACKS)
async def stack(
    request: pytest.FixtureRequest,
    triton: EmbeddedTriton,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[AdminStack]:
    """The stack of this parameter, with its admin tokens."""
    redis_url = await require_redis()
    logs = tmp_path_factory.mktemp(f"admin-api-{request.param}")
    async with admin_stack(request.param, triton.http_url, redis_url, logs) as made:
        yield made
