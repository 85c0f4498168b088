"""The limiter on a real Redis Cluster: three primaries on loopback, made by the fixture."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from gateway.api.rate_limits import status_code
from gateway.limits import LimitSet, RateLimiter
from gateway.settings import Settings
from tests.support.redis_servers import RedisClusterNodes

PREFIX, MODEL = "vg-cluster:", "vlm"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """Three cluster-enabled redis-servers, joined; killed afterwards."""
    nodes = RedisClusterNodes(Path(tmp_path_factory.mktemp("redis-cluster")))
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def key(org: int, name: str) -> str:
    """A limiter key as RedisBackend names it: the org and model are the hash tag."""
    return f"{PREFIX}{{{org}:{MODEL}}}:{name}"


def orgs_on_every_node(client: RedisCluster, count: int) -> list[int]:
    """Organisation ids whose keys land on ``count`` different nodes."""
    by_port: dict[int, int] = {}
    for org in range(1, 1000):
        by_port.setdefault(client.get_node_from_key(key(org, "rpm")).port, org)
        if len(by_port) == count:
            return list(by_port.values())
    raise AssertionError("the slots did not spread over the nodes")


async def test_admit_finish_and_renew_on_a_redis_cluster(cluster: RedisClusterNodes) -> None:
    limiter = RateLimiter(
        Settings(redis_url=cluster.url, redis_cluster=True, redis_key_prefix=PREFIX)
    )
    try:
        assert limiter._redis is not None
        client = limiter._redis.client
        assert isinstance(client, RedisCluster)
        await client.initialize()
        rpm_org, tpm_org, lease_org = orgs_on_every_node(client, 3)

        rpm = [await limiter.admit(rpm_org, MODEL, LimitSet(rpm=2), 1) for _ in range(3)]
        assert [status_code(d) for d in rpm] == [200, 200, 429]
        assert rpm[2].violation is not None and rpm[2].violation.kind == "rpm"

        tokens = LimitSet(tpm=100)
        reserved = await limiter.admit(tpm_org, MODEL, tokens, 60)
        assert reserved.reservation is not None
        refused = await limiter.admit(tpm_org, MODEL, tokens, 50)
        assert refused.violation is not None and refused.violation.kind == "tpm"
        await limiter.finish(reserved.reservation, 10)  # settled: 50 of the 60 come back
        assert (await limiter.admit(tpm_org, MODEL, tokens, 50)).allowed

        quota = LimitSet(concurrency=1, monthly_tokens=100)
        held = await limiter.admit(lease_org, MODEL, quota, 70)
        assert held.reservation is not None
        busy = await limiter.admit(lease_org, MODEL, quota, 1)
        assert busy.violation is not None and busy.violation.kind == "concurrency"
        leases = key(lease_org, "leases")
        before = await client.zscore(leases, held.reservation.id)
        await asyncio.sleep(0.01)  # time passes, so a renewal moves the lease's expiry
        await limiter.renew_leases()
        after = await client.zscore(leases, held.reservation.id)
        assert before is not None and after is not None and after > before
        await limiter.finish(held.reservation, 70)
        over = await limiter.admit(lease_org, MODEL, quota, 40)
        assert over.violation is not None and over.violation.kind == "monthly_tokens"
        assert (await limiter.admit(lease_org, MODEL, quota, 30)).allowed

        await limiter.heartbeat()
        assert limiter.processes == 1
        health = limiter.health()
        assert (health.backend, health.redis_reachable, health.degraded_admissions) == (
            "redis",
            True,
            0,
        )
        # Each organisation's keys live on its own node, each in one slot.
        for org, name in ((rpm_org, "rpm"), (tpm_org, "tpm"), (lease_org, "leases")):
            node = client.get_node_from_key(key(org, name))
            direct = Redis(host=node.host, port=node.port)
            try:
                assert await direct.exists(key(org, name)) == 1
            finally:
                await direct.aclose()
    finally:
        await limiter.close()
