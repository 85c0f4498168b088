"""Redis unreachable: keep serving in-process (default) or 503 (fail closed); then recover."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from gateway.api.rate_limits import LimiterDown, status_code
from gateway.limits import LimiterUnavailable, LimitSet, RateLimiter
from gateway.settings import Settings
from tests.support.processes import free_port
from tests.support.redis_servers import RedisServer

LIMITS = LimitSet(rpm=2)


def limiter_on(url: str, **overrides: object) -> RateLimiter:
    """A limiter on a Redis URL, quick to notice failure and to retry."""
    return RateLimiter(
        Settings(redis_url=url, redis_retry_interval_s=0.2, **overrides)  # type: ignore[arg-type]
    )


async def test_fail_open_by_default() -> None:
    limiter = limiter_on(f"redis://127.0.0.1:{free_port()}/0")
    try:
        decisions = [await limiter.admit(1, "vlm", LIMITS, 1) for _ in range(3)]
        # Still limited, by this process's own limiter.
        assert [status_code(d) for d in decisions] == [200, 200, 429]
        health = limiter.health()
        assert (health.backend, health.redis_reachable, health.ready) == (
            "in-process",
            False,
            True,
        )
        assert health.degraded_admissions == 3
        assert "Redis unreachable" in health.detail
    finally:
        await limiter.close()


async def test_fail_closed_refuses_with_503() -> None:
    limiter = limiter_on(f"redis://127.0.0.1:{free_port()}/0", limits_fail_closed=True)
    try:
        with pytest.raises(LimiterUnavailable) as caught:
            await limiter.admit(1, "vlm", LIMITS, 1)
        error = LimiterDown(caught.value.retry_after_s)
        body, headers = msgspec.to_builtins(error.body()), error.headers
        assert error.status_code == 503
        assert body["error"]["code"] == "rate_limiter_unavailable"
        assert headers == {"retry-after": "1"}
        assert not limiter.health().ready
    finally:
        await limiter.close()


async def test_redis_stopped_mid_run_then_back(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    limiter = limiter_on(server.url)
    try:
        assert (await limiter.admit(1, "vlm", LIMITS, 1)).allowed
        assert limiter.health().backend == "redis"

        server.stop()
        during = await limiter.admit(1, "vlm", LIMITS, 1)
        assert during.allowed  # served, by the in-process limiter
        assert during.reservation is not None
        assert during.reservation.backend == "in-process"
        assert not limiter.health().redis_reachable
        await limiter.finish(during.reservation, 1)

        server.start()
        # Under load a restarted redis-server takes a moment to accept connections.
        deadline = asyncio.get_running_loop().time() + 10
        while not limiter.health().redis_reachable:
            assert asyncio.get_running_loop().time() < deadline, "Redis never came back"
            await asyncio.sleep(0.1)
            await limiter.probe()
        # The restarted Redis is empty: it admits two more, where the in-process limiter
        # (one used of two) would have admitted one; so Redis decides again.
        after = [status_code(await limiter.admit(1, "vlm", LIMITS, 1)) for _ in range(3)]
        assert after == [200, 200, 429]
        assert limiter.health().backend == "redis"
        assert limiter.health().redis_reachable
    finally:
        await limiter.close()
        server.stop()
