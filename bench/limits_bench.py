"""Limiter benchmark: the cost of one admission, and admitted/limit under contention.

Run: .venv/bin/python -m bench.limits_bench [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
import uuid
from multiprocessing.synchronize import Barrier

from redis.asyncio import Redis

from gateway.limits import LimitSet, RateLimiter
from gateway.settings import Settings

# Every limit set, none reached: the whole script runs for each admission.
FULL_LIMITS = LimitSet(
    rpm=10**9, rpd=10**9, tpm=10**12, tpd=10**12, concurrency=10**6, monthly_tokens=10**15
)


async def admission_cost(settings: Settings, n: int) -> list[float]:
    """Microseconds per admit + finish pair, sequential, one org and model."""
    limiter = RateLimiter(settings)
    timings = []
    for i in range(n + 100):
        start = time.perf_counter()
        decision = await limiter.admit(1, "vlm", FULL_LIMITS, 500)
        elapsed = time.perf_counter() - start
        assert decision.reservation is not None
        await limiter.finish(decision.reservation, 400)
        if i >= 100:  # warm-up: connection, script load
            timings.append(elapsed * 1e6)
    await limiter.close()
    return timings


def contend(settings: Settings, limit: int, clients: int, barrier: Barrier, out: object) -> None:
    """One worker process: ``clients`` concurrent admissions after everyone is ready."""

    async def main() -> int:
        limiter = RateLimiter(settings)
        limits = LimitSet(rpm=limit)
        await limiter.admit(2, "warm-up", limits, 1)
        barrier.wait()
        decisions = await asyncio.gather(
            *(limiter.admit(2, "vlm", limits, 1) for _ in range(clients))
        )
        await limiter.close()
        return sum(d.allowed for d in decisions)

    out.put(asyncio.run(main()))  # type: ignore[attr-defined]


def contention(settings: Settings, processes: int, clients: int, limit: int) -> int:
    """Requests admitted when ``processes`` workers each race ``clients`` admissions."""
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=contend, args=(settings, limit, clients, barrier, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    admitted = sum(out.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join()
    return admitted


async def clean(url: str, prefix: str) -> None:
    """Delete the benchmark's keys."""
    client = Redis.from_url(url)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def describe(name: str, timings: list[float]) -> str:
    """Median and p99 of timings in µs."""
    p99 = statistics.quantiles(timings, n=100)[98]
    return f"{name:<11} median {statistics.median(timings):7.1f} µs   p99 {p99:7.1f} µs"


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--admissions", type=int, default=5_000)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--clients", type=int, default=200, help="concurrent admissions in all")
    args = parser.parse_args()
    prefix = f"visiongate-bench-{uuid.uuid4().hex[:8]}:"
    in_process = Settings(redis_url=None)
    redis = Settings(redis_url=args.redis_url, redis_key_prefix=prefix)
    try:
        print(f"one admission (admit; all six limits set), {args.admissions} sequential:")
        print(" ", describe("in-process", asyncio.run(admission_cost(in_process, args.admissions))))
        print(" ", describe("redis", asyncio.run(admission_cost(redis, args.admissions))))
        print(f"contention on Redis, RPM limit {args.limit}, {args.clients} concurrent admissions:")
        for processes in (1, 2, 4):
            asyncio.run(clean(args.redis_url, prefix))
            start = time.perf_counter()
            admitted = contention(redis, processes, args.clients // processes, args.limit)
            elapsed = time.perf_counter() - start
            print(
                f"  {processes} process(es): admitted {admitted}/{args.limit} "
                f"({admitted / args.limit:.2f}), {elapsed:.1f} s incl. process start"
            )
    finally:
        asyncio.run(clean(args.redis_url, prefix))


if __name__ == "__main__":
    main()
