"""The rate limiter the request path calls: admit, then finish; Redis with a local fallback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from gateway import background
from gateway.limits.decision import Decision, LimitKind, Reservation, Violation
from gateway.limits.memory import InProcessBackend
from gateway.limits.policy import LimitSet
from gateway.limits.raw import read_result
from gateway.limits.redis_backend import RedisBackend
from gateway.settings import Settings

log = logging.getLogger("visiongate.limits")

# Tokens used this month before this process counted any (from the usage table).
QuotaBaseline = Callable[[int, str, datetime], Awaitable[int]]


class Backend(Protocol):
    """What both limiter backends provide."""

    name: str

    async def admit(
        self, reservation: Reservation, quota_baseline: int, quota_retry_ms: int
    ) -> list[int]: ...
    async def settle(self, reservation: Reservation, actual_tokens: int) -> None: ...
    async def renew(self, reservations: Iterable[Reservation]) -> None: ...
    async def close(self) -> None: ...


class LimiterUnavailable(Exception):
    """Redis is unreachable and ``limits_fail_closed`` is set: answer 503."""

    status_code = 503
    code = "rate_limiter_unavailable"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("rate limiter unavailable")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class LimiterHealth:
    """For /readyz and /metrics: which backend decides, and whether it is degraded."""

    backend: str
    redis_configured: bool
    redis_reachable: bool
    fail_closed: bool
    degraded_admissions: int
    detail: str

    @property
    def ready(self) -> bool:
        """False only when Redis is down and the limiter fails closed."""
        return self.redis_reachable or not (self.redis_configured and self.fail_closed)


def month_bounds(now: float) -> tuple[datetime, datetime]:
    """The start of this UTC month and of the next."""
    current = datetime.fromtimestamp(now, UTC)
    start = current.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


def too_large(limits: LimitSet, tokens: int) -> Violation | None:
    """A request that could never fit its per-minute or per-day token limit (413)."""
    token_limits: tuple[tuple[LimitKind, int | None], ...] = (
        ("tpm", limits.tpm),
        ("tpd", limits.tpd),
    )
    for kind, limit in token_limits:
        if limit is not None and tokens > limit:
            return Violation(kind, limit, 0, tokens, 0.0)
    return None


class RateLimiter:
    """Admission control per organisation per model.

    With Redis configured every decision is one Lua call shared by all workers. When Redis
    fails, decisions fall back to this process's in-process limiter (fail-open, the default)
    or raise LimiterUnavailable (``limits_fail_closed``); Redis is tried again every
    ``redis_retry_interval_s`` and takes over as soon as it answers.
    """

    def __init__(
        self,
        settings: Settings,
        quota_baseline: QuotaBaseline | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._quota_baseline = quota_baseline
        self._memory = InProcessBackend(
            settings.concurrency_lease_ttl_s, settings.concurrency_retry_after_s, clock
        )
        self._redis: RedisBackend | None = None
        if settings.redis_url:
            pool = BlockingConnectionPool.from_url(
                settings.redis_url,
                max_connections=settings.redis_max_connections,
                timeout=settings.redis_pool_timeout_s,
                socket_timeout=settings.redis_timeout_s,
                socket_connect_timeout=settings.redis_timeout_s,
            )
            client = Redis(connection_pool=pool)
            self._redis = RedisBackend(
                client,
                settings.redis_key_prefix,
                settings.concurrency_lease_ttl_s,
                settings.concurrency_retry_after_s,
            )
        self._redis_down_since: float | None = None
        self._redis_retry_at = 0.0
        self._redis_error = ""
        self._degraded_admissions = 0
        self._live: dict[str, Reservation] = {}
        self._renewer: asyncio.Task[None] | None = None

    def _backend(self, name: str) -> Backend:
        return self._redis if name == "redis" and self._redis is not None else self._memory

    async def admit(self, org_id: int, model: str, limits: LimitSet, tokens: int) -> Decision:
        """Decide one request of ``tokens`` estimated tokens; commits only when allowed."""
        now = self._clock()
        month_start, next_month = month_bounds(now)
        baseline = 0
        if limits.monthly_tokens is not None and self._quota_baseline is not None:
            baseline = await self._quota_baseline(org_id, model, month_start)
        reservation = Reservation(
            id=uuid.uuid4().hex,
            org_id=org_id,
            model=model,
            limits=limits,
            tokens=tokens,
            month=month_start.strftime("%Y-%m"),
            backend="redis",
        )
        quota_retry_ms = max(1, int((next_month.timestamp() - now) * 1000))
        raw = await self._admit_raw(reservation, baseline, quota_retry_ms)
        if raw is None:
            reservation = dataclasses.replace(reservation, backend="in-process")
            raw = await self._memory.admit(reservation, baseline, quota_retry_ms)
        decision = read_result(raw, reservation, tokens)
        oversized = too_large(limits, tokens)
        if oversized is not None:
            # The script refused it too (it cannot fit), so nothing was reserved.
            return Decision(decision.requests, decision.tokens, oversized, too_large=True)
        if decision.reservation is not None and reservation.lease_id is not None:
            self._live[reservation.id] = reservation
        return decision

    async def _admit_raw(
        self, reservation: Reservation, baseline: int, quota_retry_ms: int
    ) -> list[int] | None:
        """The Redis decision, or None when the in-process limiter must decide."""
        if self._redis is None:
            return None
        if self._redis_down_since is None or self._monotonic() >= self._redis_retry_at:
            try:
                raw = await self._redis.admit(reservation, baseline, quota_retry_ms)
            except (RedisError, OSError) as exc:
                self._mark_down(exc)
            else:
                self._mark_up()
                return raw
        if self._settings.limits_fail_closed:
            raise LimiterUnavailable(self._settings.redis_retry_interval_s)
        self._degraded_admissions += 1
        return None

    def _mark_down(self, exc: Exception) -> None:
        now = self._monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = now
            mode = (
                "refusing requests (503)"
                if self._settings.limits_fail_closed
                else ("limiting in-process per worker")
            )
            log.error("Redis unreachable (%s): %s until it returns", exc, mode)
        self._redis_error = f"{type(exc).__name__}: {exc}"
        self._redis_retry_at = now + self._settings.redis_retry_interval_s

    def _mark_up(self) -> None:
        if self._redis_down_since is not None:
            log.warning(
                "Redis reachable again after %.1f s: shared limits resumed",
                self._monotonic() - self._redis_down_since,
            )
            self._redis_down_since = None
            self._redis_error = ""

    async def finish(self, reservation: Reservation, actual_tokens: int) -> None:
        """The request ended (done, failed or disconnected): settle tokens, release the lease."""
        self._live.pop(reservation.id, None)
        try:
            await self._backend(reservation.backend).settle(reservation, actual_tokens)
        except (RedisError, OSError) as exc:
            # The lease expires on its own; the token correction is lost, which errs strict.
            self._mark_down(exc)

    async def probe(self) -> None:
        """Ping Redis now (for /readyz), so its state is known without waiting for traffic.

        A fail-closed worker that a load balancer stopped sending requests to (because
        /readyz said 503) learns here that Redis is back; a fail-open one notices an outage.
        While Redis is marked down it is pinged at most every ``redis_retry_interval_s``.
        """
        if self._redis is None:
            return
        if self._redis_down_since is not None and self._monotonic() < self._redis_retry_at:
            return
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            self._mark_down(exc)
        else:
            self._mark_up()

    def health(self) -> LimiterHealth:
        """The limiter's state, for /readyz and /metrics."""
        reachable = self._redis is not None and self._redis_down_since is None
        if self._redis is None:
            backend, detail = "in-process", "no Redis configured: limits are per process"
        elif reachable:
            backend, detail = "redis", "ok"
        else:
            backend = "unavailable" if self._settings.limits_fail_closed else "in-process"
            detail = f"Redis unreachable: {self._redis_error}"
        return LimiterHealth(
            backend=backend,
            redis_configured=self._redis is not None,
            redis_reachable=reachable,
            fail_closed=self._settings.limits_fail_closed,
            degraded_admissions=self._degraded_admissions,
            detail=detail,
        )

    def start(self) -> None:
        """Start renewing the leases of requests still running (call once the loop runs)."""
        self._renewer = asyncio.create_task(self._renew_forever(), name="visiongate-leases")

    async def close(self) -> None:
        """Stop renewing and close the Redis connection pool."""
        await background.stop(self._renewer)
        self._renewer = None
        if self._redis is not None:
            await self._redis.close()

    async def _renew_forever(self) -> None:
        # A third of the TTL: a lease survives two missed renewals before it expires.
        interval = self._settings.concurrency_lease_ttl_s / 3
        while True:
            await asyncio.sleep(interval)
            live = list(self._live.values())
            for name in ("redis", "in-process"):
                batch = [r for r in live if r.backend == name]
                if not batch:
                    continue
                try:
                    await self._backend(name).renew(batch)
                except (RedisError, OSError) as exc:
                    self._mark_down(exc)
