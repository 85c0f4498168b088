"""The monthly quota at a month's end: the limiter keeps the month it last saw until it ends."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.limits import LimitSet, RateLimiter
from gateway.settings import Settings

ORG, MODEL = 7, "vlm"


async def test_a_new_month_starts_a_fresh_quota_and_asks_for_its_own_baseline() -> None:
    last_second = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    now = [last_second]
    asked: list[datetime] = []

    async def baseline(org_id: int, model: str, month_start: datetime) -> int:
        asked.append(month_start)
        return 0

    limiter = RateLimiter(Settings(), quota_baseline=baseline, clock=lambda: now[0])
    limits = LimitSet(monthly_tokens=100)
    assert (await limiter.admit(ORG, MODEL, limits, 100)).allowed
    refused = await limiter.admit(ORG, MODEL, limits, 1)
    assert refused.violation is not None and refused.violation.kind == "monthly_tokens"
    # The quota's retry-after is the second left in December.
    assert refused.violation.retry_after_s <= 1.0
    now[0] = last_second + 1.0  # 2027-01-01T00:00:00Z
    assert (await limiter.admit(ORG, MODEL, limits, 100)).allowed
    now[0] = last_second + 0.5  # a clock stepped back: December again, still spent
    assert not (await limiter.admit(ORG, MODEL, limits, 1)).allowed
    december, january = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    assert asked == [december, december, january, december]
