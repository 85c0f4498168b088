"""A slow Redis call is not an outage: retries, idempotent scripts, the circuit breaker, the
per-process share while Redis is down, and Redis' state intact when it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.exceptions import TimeoutError as RedisTimeout

from gateway.api.rate_limits import status_code
from gateway.limits import LimitSet, RateLimiter
from gateway.settings import Settings
from tests.support.processes import free_port
from tests.support.redis_servers import RedisServer

ORG, MODEL = 21, "vlm"


def on_redis(url: str, prefix: str, **overrides: object) -> RateLimiter:
    """A limiter on real Redis under this test's key prefix."""
    return RateLimiter(
        Settings(redis_url=url, redis_key_prefix=prefix, **overrides)  # type: ignore[arg-type]
    )


class Flaky:
    """Wraps the limiter's script calls to Redis (admit, settle): the next ``failures`` calls
    raise a read timeout, before reaching Redis or, with ``ran=True``, after the script ran
    there (reply lost)."""

    def __init__(self, limiter: RateLimiter, failures: int = 1, ran: bool = False) -> None:
        assert limiter._redis is not None and limiter._redis._scripts is not None
        self._scripts = limiter._redis._scripts
        self._real: Callable[..., Awaitable[Any]] = self._scripts.call
        self._failures, self._ran = failures, ran
        self.calls = 0
        self._scripts.call = self  # type: ignore[method-assign]

    async def __call__(self, *args: Any) -> Any:
        self.calls += 1
        if self._failures == 0:
            return await self._real(*args)
        if self._ran:
            await self._real(*args)  # NoScriptError here: the failure is for the reloaded call
        self._failures -= 1
        raise RedisTimeout("Timeout reading from socket")


async def test_one_timeout_keeps_concurrency_at_its_limit(
    redis_url: str, redis_prefix: str
) -> None:
    # The reproduction of issue 11: 3 slots held in Redis, one timeout, a 4th request.
    limiter = on_redis(redis_url, redis_prefix)
    try:
        limits = LimitSet(concurrency=3)
        assert all([(await limiter.admit(ORG, MODEL, limits, 1)).allowed for _ in range(3)])
        flaky = Flaky(limiter)
        fourth = await limiter.admit(ORG, MODEL, limits, 1)
        assert status_code(fourth) == 429
        assert fourth.violation is not None and fourth.violation.kind == "concurrency"
        assert flaky.calls == 2  # the timeout, then the retry Redis answered
        health = limiter.health()
        assert (health.backend, health.redis_reachable, health.degraded_admissions) == (
            "redis",
            True,
            0,
        )
    finally:
        await limiter.close()


async def test_a_retried_admission_whose_reply_was_lost_counts_once(
    redis_url: str, redis_prefix: str
) -> None:
    limiter = on_redis(redis_url, redis_prefix)
    try:
        limits = LimitSet(rpm=3, monthly_tokens=100)
        assert (await limiter.admit(ORG, MODEL, limits, 30)).allowed
        Flaky(limiter, ran=True)
        second = await limiter.admit(ORG, MODEL, limits, 30)
        assert second.allowed
        assert second.reservation is not None and second.reservation.backend == "redis"
        # Counted once: 60 of 100 tokens and 2 of 3 requests are used, so 40 more fit, once.
        assert (await limiter.admit(ORG, MODEL, limits, 40)).allowed
        refused = await limiter.admit(ORG, MODEL, limits, 1)
        assert refused.violation is not None
        assert refused.violation.kind in ("rpm", "monthly_tokens")
        assert limiter.health().degraded_admissions == 0
    finally:
        await limiter.close()


async def test_a_retried_settlement_whose_reply_was_lost_applies_once(
    redis_url: str, redis_prefix: str
) -> None:
    limiter = on_redis(redis_url, redis_prefix)
    try:
        limits = LimitSet(monthly_tokens=100, concurrency=2)
        admitted = await limiter.admit(ORG, MODEL, limits, 60)
        assert admitted.reservation is not None
        Flaky(limiter, ran=True)
        await limiter.finish(admitted.reservation, 20)  # 60 reserved, 20 used: 40 back, once
        assert (await limiter.admit(ORG, MODEL, limits, 80)).allowed  # 20 + 80 of 100
        # Applied twice, the counter would have read 0 (clamped) and this would fit.
        refused = await limiter.admit(ORG, MODEL, limits, 1)
        assert refused.violation is not None and refused.violation.kind == "monthly_tokens"
    finally:
        await limiter.close()


async def test_consecutive_failures_open_the_breaker_then_one_trial_per_interval() -> None:
    now = [0.0]
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        redis_breaker_failures=3,
        redis_retries=2,
        redis_retry_backoff_s=0.0,
        redis_retry_interval_s=5.0,
    )
    limiter = RateLimiter(settings, monotonic=lambda: now[0])
    try:
        assert limiter._redis is not None
        attempts = Flaky(limiter, failures=0)  # counts the calls; Redis itself is absent
        limits = LimitSet(rpm=100)
        await limiter.admit(ORG, MODEL, limits, 1)
        assert attempts.calls == 3  # one call and two retries
        assert limiter.health().backend == "redis"  # one failed call is no outage
        assert not limiter.health().redis_reachable
        await limiter.admit(ORG, MODEL, limits, 1)
        await limiter.admit(ORG, MODEL, limits, 1)
        assert attempts.calls == 9
        assert limiter.health().backend == "in-process"  # open after three in a row
        await limiter.admit(ORG, MODEL, limits, 1)
        assert attempts.calls == 9  # open: Redis is not even tried
        now[0] += 5.0
        await limiter.admit(ORG, MODEL, limits, 1)
        await limiter.admit(ORG, MODEL, limits, 1)
        assert attempts.calls == 10  # half-open: one trial, no retries, then open again
        assert limiter.health().degraded_admissions == 6
    finally:
        await limiter.close()


async def test_the_breaker_closes_when_a_trial_succeeds(redis_url: str, redis_prefix: str) -> None:
    now = [0.0]
    settings = Settings(
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        redis_breaker_failures=2,
        redis_retries=0,
        redis_retry_interval_s=5.0,
    )
    limiter = RateLimiter(settings, monotonic=lambda: now[0])
    try:
        Flaky(limiter, failures=2)
        limits = LimitSet(rpm=100)
        for _ in range(2):
            decision = await limiter.admit(ORG, MODEL, limits, 1)
            assert decision.reservation is not None
            assert decision.reservation.backend == "in-process"
        assert limiter.health().backend == "in-process"
        now[0] += 5.0
        decision = await limiter.admit(ORG, MODEL, limits, 1)
        assert decision.reservation is not None and decision.reservation.backend == "redis"
        assert limiter.health().backend == "redis" and limiter.health().redis_reachable
    finally:
        await limiter.close()


async def test_while_redis_is_down_each_process_enforces_its_share(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    settings = Settings(redis_url=server.url, redis_retries=0, redis_breaker_failures=1)
    workers = [RateLimiter(settings), RateLimiter(settings)]
    try:
        for worker in workers:
            await worker.heartbeat()
        await workers[0].heartbeat()
        assert [worker.processes for worker in workers] == [2, 2]
        server.stop()
        for worker in workers:
            # Concurrency 3 and RPM 3, two live processes: ceil(3 / 2) = 2 each.
            concurrent = [
                await worker.admit(ORG, MODEL, LimitSet(concurrency=3), 1) for _ in range(3)
            ]
            assert [status_code(d) for d in concurrent] == [200, 200, 429]
            rpm = [await worker.admit(ORG, "rpm", LimitSet(rpm=3), 1) for _ in range(3)]
            assert [status_code(d) for d in rpm] == [200, 200, 429]
            assert worker.health().backend == "in-process"
            assert worker.processes == 2  # the last count seen, while Redis is away
    finally:
        for worker in workers:
            await worker.close()
        server.stop()


async def test_a_set_process_count_overrides_the_registry() -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", limits_processes=4)
    limiter = RateLimiter(settings)
    try:
        decisions = [await limiter.admit(ORG, MODEL, LimitSet(rpm=10), 1) for _ in range(4)]
        assert [status_code(d) for d in decisions] == [200, 200, 200, 429]  # ceil(10 / 4)
        assert limiter.health().processes == 4
    finally:
        await limiter.close()


async def test_when_redis_returns_its_state_is_intact(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path, persistent=True)
    server.start()
    now = [0.0]
    settings = Settings(redis_url=server.url, redis_retries=0, redis_retry_interval_s=1.0)
    limiter = RateLimiter(settings, monotonic=lambda: now[0])
    try:
        one_lease, window = LimitSet(concurrency=1), LimitSet(rpm=2)
        held = await limiter.admit(ORG, "leases", one_lease, 1)
        assert held.reservation is not None and held.reservation.backend == "redis"
        assert (await limiter.admit(ORG, "window", window, 1)).allowed  # 1 of 2, in Redis

        server.stop()  # down, but its append-only file keeps everything
        await limiter.finish(held.reservation, 1)  # cannot be settled now: kept for later
        # The in-process fallback decides, on its own counters: it must not touch Redis'.
        during = [await limiter.admit(ORG, "window", window, 1) for _ in range(3)]
        assert [status_code(d) for d in during] == [200, 200, 429]
        for decision in during[:2]:
            assert decision.reservation is not None
            assert decision.reservation.backend == "in-process"
            await limiter.finish(decision.reservation, 1)
        assert limiter.health().backend == "in-process"

        server.start()
        now[0] += 1.0
        await limiter.probe()  # the half-open trial succeeds: closed, pending settlements run
        assert limiter.health().backend == "redis"
        # The lease Redis gave before the outage came back when its request was settled there.
        assert (await limiter.admit(ORG, "leases", one_lease, 1)).allowed
        # Redis' window still holds the one request it admitted, and only that one.
        after = [await limiter.admit(ORG, "window", window, 1) for _ in range(2)]
        assert [status_code(d) for d in after] == [200, 429]
    finally:
        await limiter.close()
        server.stop()
