"""Limiter fixtures: every limiter test runs on the in-process backend and on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.limits import RateLimiter
from gateway.settings import Settings
from tests.support.limits import LIMITER_BACKENDS, MakeLimiter, settings_for
from tests.support.services import delete_prefix, require_redis, unique_prefix


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The real Redis, checked; fails clearly when it is not running."""
    yield await require_redis()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix for this test alone, deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    await delete_prefix(redis_url, prefix)


@pytest.fixture(params=LIMITER_BACKENDS)
async def make_limiter(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[MakeLimiter]:
    """Build limiters on this test's backend; all are closed afterwards."""
    made: list[RateLimiter] = []

    def make(**overrides: object) -> RateLimiter:
        settings: Settings = settings_for(request.param, redis_url, redis_prefix, **overrides)
        limiter = RateLimiter(settings)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()
