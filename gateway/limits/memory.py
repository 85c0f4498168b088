"""The in-process limiter: the embedded default, and the fallback while Redis is away.

The same arithmetic as admit.lua and settle.lua, on dicts. Exact for one process; with
several processes and no Redis each process enforces the limits on its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from gateway.limits import gcra
from gateway.limits.decision import Reservation
from gateway.limits.policy import DAY_S, MINUTE_S, LimitSet
from gateway.limits.raw import NONE
from gateway.limits.standing import Peek

PERIODS_MS = (MINUTE_S * 1000, DAY_S * 1000, MINUTE_S * 1000, DAY_S * 1000)


class InProcessBackend:
    """GCRA state, concurrency leases and monthly counters in this process's memory."""

    name = "in-process"

    def __init__(
        self,
        lease_ttl_s: float,
        concurrency_retry_after_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lease_ttl_ms = lease_ttl_s * 1000
        self._concurrency_retry_ms = concurrency_retry_after_s * 1000
        self._clock = clock
        self._tats: dict[tuple[int, str, int], float] = {}
        self._leases: dict[tuple[int, str], dict[str, float]] = {}
        self._quota: dict[tuple[int, str, str], int] = {}

    def _now_ms(self) -> float:
        return self._clock() * 1000

    async def admit(
        self,
        reservation: Reservation,
        quota_baseline: int,
        quota_retry_ms: int,
    ) -> list[int]:
        """Decide and, when allowed, commit: atomic because nothing here awaits."""
        now = self._now_ms()
        org, model, limits, tokens = (
            reservation.org_id,
            reservation.model,
            reservation.limits,
            reservation.tokens,
        )
        gcra_limits = (limits.rpm, limits.rpd, limits.tpm, limits.tpd)
        costs = (1, 1, tokens, tokens)
        tats = [self._tats.get((org, model, index)) for index in range(4)]
        worst: list[int] | None = None

        def refuse(kind: int, limit: int, used: int, retry_ms: float) -> None:
            nonlocal worst
            if worst is None or retry_ms > worst[4]:
                worst = [1, kind, limit, used, math.ceil(retry_ms)]

        quota_key = (org, model, reservation.month)
        quota_used = self._quota.get(quota_key, quota_baseline)
        if limits.monthly_tokens is not None and quota_used + tokens > limits.monthly_tokens:
            result = [1, 6, limits.monthly_tokens, quota_used, quota_retry_ms]
            return result + self._windows(limits, tats, now)

        leases = self._leases.setdefault((org, model), {})
        for lease, expiry in list(leases.items()):
            if expiry <= now:
                del leases[lease]
        if limits.concurrency is not None and len(leases) + 1 > limits.concurrency:
            refuse(5, limits.concurrency, len(leases), self._concurrency_retry_ms)

        new_tats: list[float | None] = [None] * 4
        for index, limit in enumerate(gcra_limits):
            if limit is None:
                continue
            period = PERIODS_MS[index]
            new_tat = gcra.next_tat(tats[index], now, limit, period, costs[index])
            new_tats[index] = new_tat
            wait = gcra.retry_after_ms(new_tat, now, period)
            if wait > 0:
                refuse(index + 1, limit, gcra.used(tats[index], now, limit, period), wait)

        if worst is not None:
            return worst + self._windows(limits, tats, now)
        for index, committed in enumerate(new_tats):
            if committed is not None:
                self._tats[(org, model, index)] = committed
        if reservation.lease_id is not None:
            leases[reservation.lease_id] = now + self._lease_ttl_ms
        if limits.monthly_tokens is not None:
            self._quota[quota_key] = quota_used + tokens
        return [0, NONE, NONE, NONE, 0, *self._windows(limits, new_tats, now)]

    @staticmethod
    def _windows(limits: LimitSet, tats: list[float | None], now: float) -> list[int]:
        window: list[int] = []
        for index, limit in ((1, limits.rpd), (2, limits.tpm)):
            if limit is None:
                window += [NONE, NONE]
                continue
            window += [
                gcra.remaining(tats[index], now, limit, PERIODS_MS[index]),
                math.ceil(gcra.reset_ms(tats[index], now)),
            ]
        return window

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct the token reservation to the real count and give the lease back."""
        now = self._now_ms()
        org, model, limits = reservation.org_id, reservation.model, reservation.limits
        delta = actual_tokens - reservation.tokens
        for index, limit in ((2, limits.tpm), (3, limits.tpd)):
            key = (org, model, index)
            if limit is None or delta == 0:
                continue
            tat = max(self._tats.get(key, now), now)
            self._tats[key] = max(tat + delta * gcra.emission_ms(limit, PERIODS_MS[index]), now)
        quota_key = (org, model, reservation.month)
        if limits.monthly_tokens is not None and quota_key in self._quota:
            self._quota[quota_key] = max(0, self._quota[quota_key] + delta)
        if reservation.lease_id is not None:
            self._leases.get((org, model), {}).pop(reservation.lease_id, None)

    async def renew(self, reservations: Iterable[Reservation]) -> None:
        """Push the expiry of live leases forward."""
        expiry = self._now_ms() + self._lease_ttl_ms
        for reservation in reservations:
            leases = self._leases.get((reservation.org_id, reservation.model), {})
            if reservation.lease_id in leases:
                leases[reservation.lease_id] = expiry

    def peek(self, org_id: int, model: str, month: str) -> Peek:
        """The limits' state for one organisation and model, changing nothing."""
        now = self._now_ms()
        rpm, rpd, tpm, tpd = (self._tats.get((org_id, model, index)) for index in range(4))
        leases = self._leases.get((org_id, model), {})
        live = sum(1 for expiry in leases.values() if expiry > now)
        quota = self._quota.get((org_id, model, month))
        return Peek(now, (rpm, rpd, tpm, tpd), live, quota)

    async def close(self) -> None:
        """Nothing to release."""
