"""What is left of each limit right now, for one organisation on one model (a read, no charge).

Both backends read the same raw state (:class:`Peek`); the arithmetic is GCRA's, as for the
x-ratelimit-* headers.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.limits import gcra
from gateway.limits.policy import DAY_S, MINUTE_S, LimitSet

_PERIODS_MS = (MINUTE_S * 1000, DAY_S * 1000, MINUTE_S * 1000, DAY_S * 1000)


@dataclass(frozen=True, slots=True)
class Peek:
    """The state a backend holds: its clock, the four GCRA TATs (RPM, RPD, TPM, TPD; None when
    full), live concurrency leases, and this month's tokens (None when not counted yet)."""

    now_ms: float
    tats: tuple[float | None, float | None, float | None, float | None]
    leases: int
    quota_used: int | None


@dataclass(frozen=True, slots=True)
class Allowance:
    """One limit now: the limit (None: unlimited), what is left, and seconds until it is full
    again (for concurrency: None, a slot frees when a request ends)."""

    limit: int | None
    remaining: int | None
    reset_s: float | None


UNLIMITED_NOW = Allowance(None, None, None)


@dataclass(frozen=True, slots=True)
class Standing:
    """Every limit of a LimitSet, now."""

    rpm: Allowance
    rpd: Allowance
    tpm: Allowance
    tpd: Allowance
    concurrency: Allowance
    monthly_tokens: Allowance


def standing(limits: LimitSet, peek: Peek, quota_baseline: int, month_end_ms: float) -> Standing:
    """The allowances ``limits`` leave in the state ``peek``.

    ``quota_baseline``: this month's tokens when the backend has not counted any yet.
    """
    now = peek.now_ms
    rates: list[Allowance] = []
    for index, limit in enumerate((limits.rpm, limits.rpd, limits.tpm, limits.tpd)):
        if limit is None:
            rates.append(UNLIMITED_NOW)
            continue
        tat, period = peek.tats[index], _PERIODS_MS[index]
        rates.append(
            Allowance(
                limit, gcra.remaining(tat, now, limit, period), gcra.reset_ms(tat, now) / 1000
            )
        )
    concurrency = UNLIMITED_NOW
    if limits.concurrency is not None:
        concurrency = Allowance(limits.concurrency, max(0, limits.concurrency - peek.leases), None)
    monthly = UNLIMITED_NOW
    if limits.monthly_tokens is not None:
        used = quota_baseline if peek.quota_used is None else peek.quota_used
        left = max(0, limits.monthly_tokens - used)
        monthly = Allowance(limits.monthly_tokens, left, max(0.0, (month_end_ms - now) / 1000))
    rpm, rpd, tpm, tpd = rates
    return Standing(rpm, rpd, tpm, tpd, concurrency, monthly)
