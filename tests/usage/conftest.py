"""Limiters on both backends (in-process and real Redis) for the standing tests; a gateway
per database (SQLite, PostgreSQL) with the usage tests' organisations for the HTTP tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.limits import RateLimiter
from gateway.limits.limiter import QuotaBaseline
from gateway.settings import Settings
from gateway.triton_process import EmbeddedTriton
from tests.support.admin import AdminStack, admin_stack
from tests.support.limits import LIMITER_BACKENDS, MakeLimiter, settings_for
from tests.support.services import delete_prefix, require_redis, unique_prefix
from tests.support.stack import STACKS
from tests.support.usage import Provisioned, provision_usage


@pytest.fixture(params=LIMITER_BACKENDS)
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """Build limiters on this test's backend (a fresh Redis key prefix); closed afterwards."""
    redis_url = await require_redis()
    prefix = unique_prefix()
    made: list[RateLimiter] = []

    def make(quota_baseline: QuotaBaseline | None = None, **overrides: object) -> RateLimiter:
        settings: Settings = settings_for(request.param, redis_url, prefix, **overrides)
        limiter = RateLimiter(settings, quota_baseline=quota_baseline)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()
    await delete_prefix(redis_url, prefix)


@pytest.fixture(scope="package", params=STACKS)
async def stack(
    request: pytest.FixtureRequest,
    triton: EmbeddedTriton,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[AdminStack]:
    """`visiongate serve --workers 2` on SQLite or PostgreSQL, with Redis, and USAGE_ORGS."""
    redis_url = await require_redis()
    logs = tmp_path_factory.mktemp(f"usage-{request.param}")
    async with admin_stack(request.param, triton.http_url, redis_url, logs) as made:
        yield made


@pytest.fixture(scope="package")
async def orgs(stack: AdminStack) -> dict[str, Provisioned]:
    """The usage tests' organisations and keys on this stack."""
    return await provision_usage(stack.engine)
