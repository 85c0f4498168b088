"""The registry of live gateway processes in Redis, whose count divides the limits in an outage."""

from __future__ import annotations

import asyncio
import time

from gateway.limits import RateLimiter
from gateway.settings import Settings


def on_redis(url: str, prefix: str, **overrides: object) -> RateLimiter:
    """A limiter on real Redis under this test's key prefix."""
    return RateLimiter(
        Settings(redis_url=url, redis_key_prefix=prefix, **overrides)  # type: ignore[arg-type]
    )


async def test_the_registry_counts_live_processes_and_forgets_a_dead_one(
    redis_url: str, redis_prefix: str
) -> None:
    live, leaving = on_redis(redis_url, redis_prefix), on_redis(redis_url, redis_prefix)
    dying = on_redis(redis_url, redis_prefix, concurrency_lease_ttl_s=1.0)
    try:
        await live.heartbeat()
        assert live.processes == 1
        await leaving.heartbeat()
        await dying.heartbeat()
        died_at = time.monotonic()  # it never heartbeats again
        assert dying.processes == 3
        await leaving.close()  # a process that stops leaves at once
        await live.heartbeat()
        assert live.processes == 2
        # Waiting out the 1 s TTL is the behaviour under test.
        await asyncio.sleep(max(0.0, 1.1 - (time.monotonic() - died_at)))
        await live.heartbeat()  # the dying one's heartbeat ran out
        assert live.processes == 1
        assert live.health().processes == 1
    finally:
        await live.close()
        await dying.close()


async def test_started_limiters_register_themselves(redis_url: str, redis_prefix: str) -> None:
    limiters = [on_redis(redis_url, redis_prefix) for _ in range(3)]
    observer = on_redis(redis_url, redis_prefix)
    try:
        for limiter in limiters:
            limiter.start()  # heartbeats at once, then every lease TTL / 3
        deadline = time.monotonic() + 10
        while observer.processes != 4:  # the three and the observer itself
            assert time.monotonic() < deadline, f"only {observer.processes} processes seen"
            await asyncio.sleep(0.02)
            await observer.heartbeat()
    finally:
        for limiter in [*limiters, observer]:
            await limiter.close()
