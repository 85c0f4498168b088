"""The rate limiter the request path calls: admit, then finish; Redis with a local fallback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff
from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    RedisClusterException,
    RedisError,
    TimeoutError,
    TryAgainError,
)

from gateway import background
from gateway.limits.breaker import CircuitBreaker
from gateway.limits.decision import Decision, LimitKind, Reservation, Violation
from gateway.limits.memory import InProcessBackend
from gateway.limits.policy import LimitSet
from gateway.limits.raw import read_result
from gateway.limits.redis_backend import RedisBackend, connect
from gateway.limits.share import process_share
from gateway.limits.standing import Peek, Standing, standing
from gateway.settings import Settings

log = logging.getLogger("visiongate.limits")

T = TypeVar("T")
# What a Redis call that did not answer raises; the first four are worth retrying.
RETRYABLE = (ConnectionError, TimeoutError, ClusterDownError, TryAgainError)
UNANSWERED = (RedisError, RedisClusterException, OSError)

# Tokens used this month before this process counted any (from the usage table).
QuotaBaseline = Callable[[int, str, datetime], Awaitable[int]]


class RedisUnanswered(Exception):
    """Redis gave no answer to one call (retries included), or the breaker is open."""


class LimiterUnavailable(Exception):
    """Redis is unreachable and ``limits_fail_closed`` is set: nothing may be admitted."""

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
    processes: int
    detail: str

    @property
    def ready(self) -> bool:
        """False only when Redis is down and the limiter fails closed."""
        return self.redis_reachable or not (self.redis_configured and self.fail_closed)


@dataclass(frozen=True, slots=True)
class Month:
    """One UTC calendar month, as admission needs it."""

    start: datetime
    start_s: float  # its start and the next month's, as POSIX timestamps
    next_s: float
    name: str  # "YYYY-MM", the monthly quota's key

    @classmethod
    def of(cls, now: float) -> Month:
        """The month ``now`` falls in."""
        current = datetime.fromtimestamp(now, UTC)
        start = current.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if start.month == 12:
            following = start.replace(year=start.year + 1, month=1)
        else:
            following = start.replace(month=start.month + 1)
        return cls(start, start.timestamp(), following.timestamp(), start.strftime("%Y-%m"))

    def holds(self, now: float) -> bool:
        """Whether ``now`` falls in this month."""
        return self.start_s <= now < self.next_s


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

    With Redis configured every decision is one Lua call shared by all workers. A call that
    times out or loses its connection is retried (``redis_retries``; the scripts recognise a
    reservation they already counted). A decision Redis cannot make falls back to this
    process's in-process limiter, enforcing this process's share of each limit (fail-open,
    the default), or raises LimiterUnavailable (``limits_fail_closed``). After
    ``redis_breaker_failures`` failed calls in a row the breaker opens: Redis is then tried
    once every ``redis_retry_interval_s`` and takes over as soon as it answers. Reservations
    Redis admitted settle in Redis, when it answers again if need be.
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
            self._redis = RedisBackend(
                connect(settings),
                settings.redis_key_prefix,
                settings.concurrency_lease_ttl_s,
                settings.concurrency_retry_after_s,
                settings.redis_pool_timeout_s,
                settings.redis_timeout_s,
            )
        self._breaker = CircuitBreaker(
            settings.redis_breaker_failures, settings.redis_retry_interval_s, monotonic
        )
        backoff = ConstantBackoff(settings.redis_retry_backoff_s)
        self._retry = Retry(backoff, settings.redis_retries, RETRYABLE)
        self._trial = Retry(backoff, 0, RETRYABLE)
        self._redis_error = ""
        self._degraded_admissions = 0
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Reservation ids (Redis' idempotency markers, concurrency leases): unique across
        # processes by 64 random bits drawn once, then a count; no system call per request.
        ids = uuid.uuid4().hex[:16]
        self._reservation_ids = (f"{ids}-{n:x}" for n in itertools.count())
        self._live_processes = 1  # as last seen in Redis' registry
        self._live: dict[str, Reservation] = {}
        # Redis reservations that ended while Redis was away: settled when it answers.
        self._unsettled: dict[str, tuple[Reservation, int]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self._month: Month | None = None  # the last admission's: recomputed when it rolls over

    @property
    def processes(self) -> int:
        """How many processes share the limits while Redis is down."""
        return self._settings.limits_processes or self._live_processes

    async def admit(self, org_id: int, model: str, limits: LimitSet, tokens: int) -> Decision:
        """Decide one request of ``tokens`` estimated tokens; commits only when allowed."""
        now = self._clock()
        month = self._month
        if month is None or not month.holds(now):
            month = self._month = Month.of(now)
        baseline = 0
        if limits.monthly_tokens is not None and self._quota_baseline is not None:
            baseline = await self._quota_baseline(org_id, model, month.start)
        reservation = Reservation(
            id=next(self._reservation_ids),
            org_id=org_id,
            model=model,
            limits=limits,
            tokens=tokens,
            month=month.name,
            backend="redis",
        )
        quota_retry_ms = max(1, int((month.next_s - now) * 1000))
        raw = await self._admit_raw(reservation, baseline, quota_retry_ms)
        if raw is None:
            share = process_share(limits, self.processes, baseline)
            reservation = dataclasses.replace(reservation, limits=share, backend="in-process")
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
        redis = self._redis
        if redis is None:
            return None
        try:
            return await self._call(lambda: redis.admit(reservation, baseline, quota_retry_ms))
        except RedisUnanswered:
            if self._settings.limits_fail_closed:
                raise LimiterUnavailable(self._settings.redis_retry_interval_s) from None
            self._degraded_admissions += 1
            return None

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """One Redis call through the breaker, retried on timeouts and lost connections.

        Only idempotent calls come here: a retry may follow an attempt that did run in Redis
        and only lost its reply. Raises RedisUnanswered when the breaker is open or every
        attempt failed; a half-open trial is one attempt.
        """
        if not self._breaker.allow():
            raise RedisUnanswered
        retry = self._retry if self._breaker.closed else self._trial
        try:
            result = await retry.call_with_retry(call, self._retrying)
        except UNANSWERED as exc:
            self._failed(exc)
            raise RedisUnanswered from exc
        open_s = self._breaker.succeeded()
        self._redis_error = ""
        if open_s is not None:
            log.warning("Redis reachable again after %.1f s: shared limits resumed", open_s)
            await self._settle_unsettled()
        return result

    @staticmethod
    async def _retrying(exc: Exception) -> None:
        log.info("Redis call failed, retrying: %s: %s", type(exc).__name__, exc)

    def _failed(self, exc: Exception) -> None:
        self._redis_error = f"{type(exc).__name__}: {exc}"
        if self._breaker.failed():
            mode = (
                "refusing requests (503)"
                if self._settings.limits_fail_closed
                else f"limiting in-process, to 1/{self.processes} of each limit"
            )
            log.error("Redis unreachable (%s): %s until it returns", self._redis_error, mode)
        elif self._breaker.closed:
            log.warning(
                "Redis call failed (%d in a row): %s", self._breaker.failures, self._redis_error
            )

    async def finish(self, reservation: Reservation, actual_tokens: int) -> None:
        """The request ended (done, failed or disconnected): settle tokens, release the lease."""
        self._live.pop(reservation.id, None)
        if reservation.backend != "redis" or self._redis is None:
            await self._memory.settle(reservation, actual_tokens)
            return
        try:
            await self._settle_in_redis(reservation, actual_tokens)
        except RedisUnanswered:
            # Settled when Redis answers again; meanwhile its lease may expire, which errs strict.
            self._unsettled[reservation.id] = (reservation, actual_tokens)

    async def _settle_in_redis(self, reservation: Reservation, actual_tokens: int) -> None:
        redis = self._redis
        assert redis is not None
        await self._call(lambda: redis.settle(reservation, actual_tokens))

    async def _settle_unsettled(self) -> None:
        """Settle in Redis the reservations it admitted that ended while it was away."""
        for reservation, actual_tokens in list(self._unsettled.values()):
            try:
                await self._settle_in_redis(reservation, actual_tokens)
            except RedisUnanswered:
                return
            self._unsettled.pop(reservation.id, None)

    async def standing(self, org_id: int, model: str, limits: LimitSet) -> Standing:
        """What is left of each limit now, charging nothing (``GET /v1/organization/limits``).

        From Redis, or while it is away (fail-open) from this process's share; raises
        LimiterUnavailable when it is away and limits fail closed.
        """
        month = Month.of(self._clock())
        peek: Peek | None = None
        if self._redis is not None:
            redis = self._redis
            try:
                peek = await self._call(lambda: redis.peek(org_id, model, month.name))
            except RedisUnanswered:
                if self._settings.limits_fail_closed:
                    raise LimiterUnavailable(self._settings.redis_retry_interval_s) from None
        baseline = 0
        if limits.monthly_tokens is not None and self._quota_baseline is not None:
            baseline = await self._quota_baseline(org_id, model, month.start)
        if peek is None:
            peek = self._memory.peek(org_id, model, month.name)
            limits = process_share(limits, self.processes, baseline)
        return standing(limits, peek, baseline, month.next_s * 1000)

    async def heartbeat(self) -> None:
        """Count this process live in Redis' registry for a lease TTL; learn how many are."""
        redis = self._redis
        if redis is None:
            return
        ttl_s = self._settings.concurrency_lease_ttl_s
        with contextlib.suppress(RedisUnanswered):  # if so, the last count seen stands
            self._live_processes = await self._call(lambda: redis.heartbeat(self.process_id, ttl_s))

    async def probe(self) -> None:
        """Ping Redis now (for /readyz), so its state is known without waiting for traffic.

        A fail-closed worker that a load balancer stopped sending requests to (because
        /readyz said 503) learns here that Redis is back; a fail-open one notices an outage.
        While the breaker is open Redis is pinged at most every ``redis_retry_interval_s``.
        """
        if self._redis is None:
            return
        with contextlib.suppress(RedisUnanswered):
            await self._call(self._redis.ping)

    def health(self) -> LimiterHealth:
        """The limiter's state, for /readyz and /metrics."""
        reachable = self._redis is not None and not self._redis_error
        if self._redis is None:
            backend, detail = "in-process", "no Redis configured: limits are per process"
        elif reachable:
            backend, detail = "redis", "ok"
        elif self._breaker.closed:
            backend = "redis"
            detail = f"Redis unreachable ({self._breaker.failures} failed in a row): "
            detail += self._redis_error
        else:
            backend = "unavailable" if self._settings.limits_fail_closed else "in-process"
            detail = f"Redis unreachable: {self._redis_error}"
        return LimiterHealth(
            backend=backend,
            redis_configured=self._redis is not None,
            redis_reachable=reachable,
            fail_closed=self._settings.limits_fail_closed,
            degraded_admissions=self._degraded_admissions,
            processes=self.processes,
            detail=detail,
        )

    def start(self) -> None:
        """Start heartbeating and renewing the leases of requests still running.

        Call once the loop runs.
        """
        self._renewer = asyncio.create_task(self._maintain_forever(), name="visiongate-leases")

    async def close(self) -> None:
        """Stop renewing, leave the registry, close the Redis connections."""
        await background.stop(self._renewer)
        self._renewer = None
        if self._redis is not None:
            if self._breaker.closed:
                try:
                    await self._redis.leave(self.process_id)
                except UNANSWERED as exc:
                    log.info("could not leave the process registry: %s", exc)
            await self._redis.close()

    async def _maintain_forever(self) -> None:
        # A third of the TTL: a lease, or a heartbeat, survives two missed renewals.
        interval = self._settings.concurrency_lease_ttl_s / 3
        while True:
            await self.heartbeat()
            await self._settle_unsettled()
            await self.renew_leases()
            await asyncio.sleep(interval)

    async def renew_leases(self) -> None:
        """Push the leases of requests still running forward (every TTL/3 once started)."""
        live = list(self._live.values())
        await self._memory.renew(r for r in live if r.backend == "in-process")
        redis = self._redis
        in_redis = [r for r in live if r.backend == "redis"]
        if redis is not None and in_redis:
            # If Redis stays away longer than their TTL, these leases expire.
            with contextlib.suppress(RedisUnanswered):
                await self._call(lambda: redis.renew(in_redis))
