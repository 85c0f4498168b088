"""What one process may admit while Redis is down and every process decides alone."""

from __future__ import annotations

from dataclasses import replace

from gateway.limits.policy import LimitSet


def _part(limit: int | None, processes: int) -> int | None:
    # ceil(limit / processes) in integers; at least 1 for any limit of at least 1.
    return None if limit is None else -(-limit // processes)


def process_share(limits: LimitSet, processes: int, quota_baseline: int) -> LimitSet:
    """This process's share of ``limits`` when ``processes`` processes each enforce their own.

    Every rate limit and the concurrency become ceil(L / processes), so together the
    processes admit at most processes·ceil(L / processes) ≤ L + processes − 1. The monthly
    quota is shared the same way in what was left of it at ``quota_baseline``.
    """
    if processes <= 1:
        return limits
    monthly = limits.monthly_tokens
    if monthly is not None and monthly > quota_baseline:
        monthly = quota_baseline + -(-(monthly - quota_baseline) // processes)
    return replace(
        limits,
        rpm=_part(limits.rpm, processes),
        rpd=_part(limits.rpd, processes),
        tpm=_part(limits.tpm, processes),
        tpd=_part(limits.tpd, processes),
        concurrency=_part(limits.concurrency, processes),
        monthly_tokens=monthly,
    )
