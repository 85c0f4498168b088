"""Across processes, on real Redis: exact admission under contention, leases of dead workers."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from multiprocessing.synchronize import Barrier

from gateway.limits import LimitSet, RateLimiter
from gateway.settings import Settings
from tests.support.limits import settings_for

ORG, MODEL = 11, "vlm"


def contend(
    redis_url: str, prefix: str, limit: int, clients: int, barrier: Barrier, results: object
) -> None:
    """One gateway worker: ``clients`` concurrent admissions, released together."""

    async def main() -> int:
        limiter = RateLimiter(settings_for("redis", redis_url, prefix))
        limits = LimitSet(rpm=limit)
        await limiter.admit(ORG, "warm-up", limits, 1)  # connect before the race starts
        barrier.wait()
        decisions = await asyncio.gather(
            *(limiter.admit(ORG, MODEL, limits, 1) for _ in range(clients))
        )
        await limiter.close()
        return sum(decision.allowed for decision in decisions)

    results.put(asyncio.run(main()))  # type: ignore[attr-defined]


def run_contention(redis_url: str, prefix: str, processes: int, clients: int, limit: int) -> int:
    """Admitted requests in total when ``processes`` workers race ``clients`` each."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=contend, args=(redis_url, prefix, limit, clients, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    admitted = sum(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    return admitted


async def test_two_workers_fifty_clients_admit_exactly_the_limit(
    redis_url: str, redis_prefix: str
) -> None:
    # RPM 10: one request's share returns after 6 s, far longer than the race takes.
    admitted = await asyncio.to_thread(run_contention, redis_url, redis_prefix, 2, 25, 10)
    assert admitted == 10


DYING_WORKER = """
import asyncio, os, sys
from gateway.limits import LimitSet, RateLimiter
from gateway.settings import Settings

async def main():
    limiter = RateLimiter(Settings(redis_url=sys.argv[1], redis_key_prefix=sys.argv[2],
                                   concurrency_lease_ttl_s=1.0))
    decision = await limiter.admit(11, "vlm", LimitSet(concurrency=1), 1)
    print("admitted" if decision.allowed else "refused", flush=True)
    os._exit(0)  # dies mid-request: never finishes, never releases

asyncio.run(main())
"""


async def test_a_dead_workers_lease_expires(redis_url: str, redis_prefix: str) -> None:
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DYING_WORKER,
        redis_url,
        redis_prefix,
        stdout=asyncio.subprocess.PIPE,
        env=os.environ.copy(),
    )
    out, _ = await worker.communicate()
    assert out.strip() == b"admitted"
    died_at = time.monotonic()
    limiter = RateLimiter(
        Settings(redis_url=redis_url, redis_key_prefix=redis_prefix, concurrency_lease_ttl_s=1.0)
    )
    try:
        limits = LimitSet(concurrency=1)
        assert not (await limiter.admit(ORG, MODEL, limits, 1)).allowed
        # Waiting out the dead worker's 1 s lease TTL is the behaviour under test.
        await asyncio.sleep(max(0.0, 1.1 - (time.monotonic() - died_at)))
        assert (await limiter.admit(ORG, MODEL, limits, 1)).allowed
    finally:
        await limiter.close()


async def test_in_process_leases_expire_too() -> None:
    now = [1_000_000.0]
    limiter = RateLimiter(Settings(concurrency_lease_ttl_s=30.0), clock=lambda: now[0])
    limits = LimitSet(concurrency=1)
    assert (await limiter.admit(ORG, MODEL, limits, 1)).allowed
    now[0] += 29.9
    assert not (await limiter.admit(ORG, MODEL, limits, 1)).allowed
    now[0] += 0.2
    assert (await limiter.admit(ORG, MODEL, limits, 1)).allowed


async def test_a_burst_beyond_the_connection_pool_is_still_exact(
    redis_url: str, redis_prefix: str
) -> None:
    # More concurrent admissions than pooled connections: they wait for a connection; they
    # must not be mistaken for Redis being down (which would admit them in-process).
    limiter = RateLimiter(
        Settings(redis_url=redis_url, redis_key_prefix=redis_prefix, redis_max_connections=8)
    )
    try:
        decisions = await asyncio.gather(
            *(limiter.admit(ORG, MODEL, LimitSet(rpm=10), 1) for _ in range(200))
        )
        assert sum(d.allowed for d in decisions) == 10
        assert limiter.health().degraded_admissions == 0
    finally:
        await limiter.close()
