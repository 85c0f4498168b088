"""What remains of each limit, read without charging: in-process and on real Redis."""

from __future__ import annotations

from datetime import datetime

from gateway.api.rate_limits import rate_limit_headers
from gateway.limits import LimitSet
from tests.support.limits import MakeLimiter

ORG, MODEL = 9, "vlm"


async def test_a_fresh_organisation_has_every_limit_left(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(rpm=5, rpd=100, tpm=1_000, tpd=50_000, concurrency=2)
    now = await limiter.standing(ORG, MODEL, limits)
    assert (now.rpm.limit, now.rpm.remaining, now.rpm.reset_s) == (5, 5, 0.0)
    assert (now.rpd.remaining, now.tpm.remaining, now.tpd.remaining) == (100, 1_000, 50_000)
    assert (now.concurrency.limit, now.concurrency.remaining) == (2, 2)
    assert now.monthly_tokens.limit is None and now.monthly_tokens.remaining is None


async def test_admissions_use_it_up_and_reading_charges_nothing(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(rpm=3, rpd=100, tpm=1_000, concurrency=2)
    first = await limiter.admit(ORG, MODEL, limits, 300)
    for _ in range(5):  # reads do not count as requests
        now = await limiter.standing(ORG, MODEL, limits)
    assert (now.rpm.remaining, now.rpd.remaining) == (2, 99)
    assert now.concurrency.remaining == 1
    # A token per 60 ms comes back: allow a loaded machine a few between the calls.
    assert 700 <= now.tpm.remaining <= 705
    assert 0 < now.tpm.reset_s <= 18.0  # 300 of 1,000 per minute come back in 18 s
    headers = rate_limit_headers(first)
    assert 0 <= now.tpm.remaining - int(headers["x-ratelimit-remaining-tokens"]) <= 5
    assert headers["x-ratelimit-remaining-requests"] == str(now.rpd.remaining)
    assert first.reservation is not None
    await limiter.finish(first.reservation, 100)  # used less than reserved: 200 come back
    after = await limiter.standing(ORG, MODEL, limits)
    assert 900 <= after.tpm.remaining <= 905
    assert after.concurrency.remaining == 2
    # Three admissions of the three RPM allowed, although the limits were read in between.
    assert [(await limiter.admit(ORG, MODEL, limits, 1)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]


async def test_the_monthly_quota_starts_from_the_usage_baseline(make_limiter: MakeLimiter) -> None:
    async def baseline(org_id: int, model: str, month_start: datetime) -> int:
        assert (org_id, model, month_start.day) == (ORG, MODEL, 1)
        return 400

    limiter = make_limiter(quota_baseline=baseline)
    limits = LimitSet(monthly_tokens=1_000)
    before = await limiter.standing(ORG, MODEL, limits)
    assert (before.monthly_tokens.limit, before.monthly_tokens.remaining) == (1_000, 600)
    assert 0 < before.monthly_tokens.reset_s <= 31 * 86_400
    decision = await limiter.admit(ORG, MODEL, limits, 250)
    assert decision.allowed
    after = await limiter.standing(ORG, MODEL, limits)
    assert after.monthly_tokens.remaining == 350
