"""Redis stopped mid-run: fail-open gateways keep serving on their own limiter and say so in
/readyz; fail-closed ones answer 503; when Redis returns, shared limits resume."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.chat import chat
from tests.support.processes import free_port
from tests.support.redis_servers import RedisServer
from tests.support.stack import Stack


async def statuses(http: httpx.AsyncClient, n: int) -> list[int]:
    return [(await http.post("/v1/chat/completions", json=chat(1))).status_code for _ in range(n)]


async def limiter_when(
    http: httpx.AsyncClient, reachable: bool, timeout_s: float = 5
) -> dict[str, Any]:
    """/readyz's limiter check, once it says Redis is (un)reachable."""
    deadline = time.monotonic() + timeout_s
    while True:
        limiter: dict[str, Any] = (await http.get("/readyz")).json()["checks"]["limiter"]
        if limiter["redis_reachable"] is reachable:
            return limiter
        assert time.monotonic() < deadline, limiter
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
async def test_redis_stopped_mid_run_then_back(stack: Stack, tmp_path: Path) -> None:
    redis = RedisServer(free_port(), tmp_path)
    redis.start()
    try:
        env = {
            "VISIONGATE_REDIS_URL": redis.url,
            "VISIONGATE_REDIS_RETRY_INTERVAL_S": "0.2",
            # Each process's share while Redis is down: ceil(3 / 2) = 2 requests per minute.
            "VISIONGATE_LIMITS_PROCESSES": "2",
        }
        fail_open = stack.start("fail-open", **env)
        fail_closed = stack.start("fail-closed", VISIONGATE_LIMITS_FAIL_CLOSED="true", **env)
        key = stack.keys["lh-redis"]  # 3 requests per minute
        async with stack.http(key, fail_open) as open_, stack.http(key, fail_closed) as closed:
            ready = (await open_.get("/readyz")).json()
            assert ready["status"] == "ready"
            assert ready["checks"]["limiter"]["backend"] == "redis"
            assert ready["checks"]["database"]["ready"] is True
            assert await statuses(open_, 1) == await statuses(closed, 1) == [200]

            redis.stop()
            # Fail open: still served, and limited to its share, by the process's own limiter.
            assert await statuses(open_, 4) == [200, 200, 429, 429]
            response = await open_.get("/readyz")
            assert response.status_code == 200
            assert response.json()["status"] == "degraded"
            limiter = response.json()["checks"]["limiter"]
            assert limiter["ready"] is True and limiter["redis_reachable"] is False
            assert limiter["backend"] == "in-process"
            assert limiter["degraded_admissions"] == 4
            assert limiter["detail"].startswith("Redis unreachable")
            assert "Redis unreachable" in fail_open.log_path.read_text()

            # Fail closed: 503, and /readyz says why.
            refused = await closed.post("/v1/chat/completions", json=chat(1))
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "rate_limiter_unavailable"
            assert int(refused.headers["retry-after"]) >= 1
            response = await closed.get("/readyz")
            assert response.status_code == 503
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["error"]["code"] == "rate_limiter_unavailable"
            assert response.json()["status"] == "unavailable"
            assert response.json()["checks"]["limiter"]["ready"] is False

            redis.start()  # empty: what the old one counted is gone
            # Both notice without any request being sent (/readyz asks Redis itself).
            await limiter_when(open_, reachable=True)
            await limiter_when(closed, reachable=True)
            assert (await closed.get("/readyz")).status_code == 200
            # Redis decides again, for both: three more in this minute, then no more for either.
            assert await statuses(open_, 4) == [200, 200, 200, 429]
            assert await statuses(closed, 1) == [429]
    finally:
        redis.stop()
