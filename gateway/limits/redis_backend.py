"""The Redis limiter: one Lua script call (one round trip) per admission, shared by every worker."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from gateway.limits.decision import Reservation
from gateway.limits.redis_scripts import DirectScript, ScriptConnections
from gateway.limits.standing import Peek
from gateway.settings import Settings

SCRIPTS = files("gateway.limits")


def connect(settings: Settings) -> Redis | RedisCluster:
    """A client for ``settings.redis_url``: one server, or a Redis Cluster (``redis_cluster``).

    The client itself never retries: the limiter does, knowing which calls are idempotent.
    """
    url = settings.redis_url or ""
    timeouts = {
        "socket_timeout": settings.redis_timeout_s,
        "socket_connect_timeout": settings.redis_timeout_s,
    }
    if settings.redis_cluster:
        # Per node; a cluster node's pool does not wait for a free connection.
        return RedisCluster.from_url(
            url,
            max_connections=settings.redis_max_connections,
            retry=Retry(NoBackoff(), 0),
            **timeouts,
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
        **timeouts,
    )
    return Redis.from_pool(pool)


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisBackend:
    """GCRA state, leases and monthly counters in Redis, under ``{prefix}{org:model}:…``.

    The org and model form the hash tag, so every key of one decision lives in one slot
    (Redis Cluster) and one script can touch them all; the registry of live processes is
    one key of its own, ``{prefix}{processes}``.
    """

    name = "redis"

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str,
        lease_ttl_s: float,
        concurrency_retry_after_s: float,
        pool_timeout_s: float,
        timeout_s: float,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the Redis key prefix must not contain braces: they form hash tags")
        self.client = client
        self._prefix = prefix
        self._lease_ttl_ms = int(lease_ttl_s * 1000)
        self._concurrency_retry_ms = int(concurrency_retry_after_s * 1000)
        admit, settle = (SCRIPTS.joinpath(name).read_text() for name in ("admit.lua", "settle.lua"))
        # A request's two calls: on connections of their own to one server (half the CPU:
        # redis_scripts.py), through the client to a cluster, which routes them by slot.
        self._scripts: ScriptConnections | None = None
        self._admit: AsyncScript | DirectScript
        self._settle: AsyncScript | DirectScript
        if isinstance(client, RedisCluster):
            self._admit = client.register_script(admit)
            self._settle = client.register_script(settle)
        else:
            pool = client.connection_pool
            self._scripts = ScriptConnections(pool, pool.max_connections, pool_timeout_s, timeout_s)
            self._admit = DirectScript(self._scripts, admit)
            self._settle = DirectScript(self._scripts, settle)
        # Run with EVAL in a pipeline: a cluster pipeline does not load scripts for EVALSHA.
        self._renew_source = SCRIPTS.joinpath("renew.lua").read_text()
        self._heartbeat = client.register_script(SCRIPTS.joinpath("heartbeat.lua").read_text())
        self._peek = client.register_script(SCRIPTS.joinpath("peek.lua").read_text())
        self._registry = f"{prefix}{{processes}}"

    def _key(self, org_id: int, model: str, name: str) -> str:
        # Braces in a model name would end the hash tag early; they never occur in real ids.
        tag = f"{org_id}:{model}".replace("{", "(").replace("}", ")")
        return f"{self._prefix}{{{tag}}}:{name}"

    def _keys(self, reservation: Reservation) -> dict[str, str]:
        org, model = reservation.org_id, reservation.model
        return {
            name: self._key(org, model, name) for name in ("rpm", "rpd", "tpm", "tpd", "leases")
        } | {
            "quota": self._key(org, model, f"tokens:{reservation.month}"),
            "marker": self._key(org, model, f"reservation:{reservation.id}"),
        }

    async def admit(
        self, reservation: Reservation, quota_baseline: int, quota_retry_ms: int
    ) -> list[int]:
        """Run admit.lua; returns the raw result."""
        keys = self._keys(reservation)
        limits = reservation.limits
        result = await self._admit(
            keys=[keys[name] for name in ("rpm", "rpd", "tpm", "tpd", "leases", "quota", "marker")],
            args=[
                _limit(limits.rpm),
                _limit(limits.rpd),
                _limit(limits.tpm),
                _limit(limits.tpd),
                _limit(limits.concurrency),
                _limit(limits.monthly_tokens),
                reservation.tokens,
                reservation.lease_id or "",
                self._lease_ttl_ms,
                quota_baseline,
                # The counter outlives its month by a day, then disappears on its own.
                quota_retry_ms + 86_400_000,
                quota_retry_ms,
                self._concurrency_retry_ms,
            ],
        )
        return [int(value) for value in result]

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Run settle.lua: correct the tokens, release the lease."""
        keys = self._keys(reservation)
        limits = reservation.limits
        await self._settle(
            keys=[keys[name] for name in ("tpm", "tpd", "leases", "quota", "marker")],
            args=[
                actual_tokens - reservation.tokens,
                _limit(limits.tpm),
                _limit(limits.tpd),
                _limit(limits.monthly_tokens),
                reservation.lease_id or "",
                self._lease_ttl_ms,
            ],
        )

    async def peek(self, org_id: int, model: str, month: str) -> Peek:
        """Run peek.lua: the limits' state for one organisation and model, changing nothing."""
        names = ("rpm", "rpd", "tpm", "tpd", "leases", f"tokens:{month}")
        reply = await self._peek(keys=[self._key(org_id, model, name) for name in names])
        seconds, micros, rpm, rpd, tpm, tpd, leases, quota = (
            value.decode() if isinstance(value, bytes) else str(value) for value in reply
        )
        rpm_tat, rpd_tat, tpm_tat, tpd_tat = (
            float(tat) if tat else None for tat in (rpm, rpd, tpm, tpd)
        )
        return Peek(
            int(seconds) * 1000 + int(micros) / 1000,
            (rpm_tat, rpd_tat, tpm_tat, tpd_tat),
            int(leases),
            int(quota) if quota else None,
        )

    async def renew(self, reservations: Iterable[Reservation]) -> None:
        """Renew every live lease in one pipelined round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            queued = False
            for reservation in reservations:
                if reservation.lease_id is None:
                    continue
                leases = self._keys(reservation)["leases"]
                pipe.eval(self._renew_source, 1, leases, reservation.lease_id, self._lease_ttl_ms)
                queued = True
            if queued:
                await pipe.execute()

    async def heartbeat(self, process_id: str, ttl_s: float) -> int:
        """Record that this process is live for ``ttl_s``; returns how many processes are."""
        return int(
            await self._heartbeat(keys=[self._registry], args=[process_id, int(ttl_s * 1000)])
        )

    async def leave(self, process_id: str) -> None:
        """Take this process out of the registry (it is stopping)."""
        await self.client.zrem(self._registry, process_id)

    async def ping(self) -> None:
        """One round trip; raises when Redis does not answer."""
        await self.client.ping()

    async def close(self) -> None:
        """Close the connections."""
        if self._scripts is not None:
            await self._scripts.close()
        await self.client.aclose()
