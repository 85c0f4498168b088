"""Each limit, hit: status, headers and body as Groq sends them; on in-process and on Redis."""

from __future__ import annotations

import asyncio
import re

from gateway.api.rate_limits import rate_limit_headers, status_code
from gateway.limits import LimitSet, RateLimiter
from tests.support.limits import MakeLimiter, error_body

ORG, MODEL = 7, "vlm"


async def admit_n(limiter: RateLimiter, limits: LimitSet, n: int, tokens: int = 1) -> list[int]:
    """Status codes of n admissions, none finished."""
    return [status_code(await limiter.admit(ORG, MODEL, limits, tokens)) for _ in range(n)]


async def test_requests_per_minute(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(rpm=3, rpd=1_000)
    assert await admit_n(limiter, limits, 3) == [200, 200, 200]
    refused = await limiter.admit(ORG, MODEL, limits, 1)
    assert status_code(refused) == 429
    body = error_body(refused, MODEL, "acme")["error"]
    assert body["type"] == "requests" and body["code"] == "rate_limit_exceeded"
    assert re.fullmatch(
        r"Rate limit reached for model `vlm` in organization `acme` on requests per minute "
        r"\(RPM\): Limit 3, Used 3, Requested 1\. Please try again in (19\.\d\d|20)s\.",
        body["message"],
    ), body["message"]
    headers = rate_limit_headers(refused)
    assert headers["retry-after"] == "20"
    assert headers["x-ratelimit-limit-requests"] == "1000"
    assert headers["x-ratelimit-remaining-requests"] == "997"


async def test_requests_per_day(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(rpd=2)
    assert await admit_n(limiter, limits, 3) == [200, 200, 429]
    refused = await limiter.admit(ORG, MODEL, limits, 1)
    assert refused.violation is not None and refused.violation.kind == "rpd"
    assert (
        "requests per day (RPD): Limit 2, Used 2"
        in error_body(refused, MODEL, "o")["error"]["message"]
    )
    headers = rate_limit_headers(refused)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert int(headers["retry-after"]) == 43_200  # half a day: one request's share comes back


async def test_tokens_per_minute_and_headers_on_success(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(tpm=1_000, rpd=100)
    ok = await limiter.admit(ORG, MODEL, limits, 600)
    assert ok.allowed
    headers = rate_limit_headers(ok)
    assert headers == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-reset-requests": "14m24s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-reset-tokens": "36s",
    }
    refused = await limiter.admit(ORG, MODEL, limits, 500)
    assert status_code(refused) == 429
    body = error_body(refused, MODEL, "acme")["error"]
    assert body["type"] == "tokens"
    assert "tokens per minute (TPM): Limit 1000, Used 600, Requested 500." in body["message"]
    assert re.search(r"Please try again in (6|5\.9\d)s\.$", body["message"]), body["message"]


async def test_tokens_per_day(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(tpd=1_000)
    assert (await limiter.admit(ORG, MODEL, limits, 900)).allowed
    refused = await limiter.admit(ORG, MODEL, limits, 200)
    assert refused.violation is not None and refused.violation.kind == "tpd"
    assert error_body(refused, MODEL, "o")["error"]["type"] == "tokens"


async def test_a_request_larger_than_the_tpm_limit_is_413(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(tpm=1_000)
    refused = await limiter.admit(ORG, MODEL, limits, 1_001)
    assert status_code(refused) == 413
    assert "retry-after" not in rate_limit_headers(refused)
    assert error_body(refused, MODEL, "acme")["error"] == {
        "message": "Request too large for model `vlm` in organization `acme` on tokens per "
        "minute (TPM): Limit 1000, Requested 1001, please reduce your message size and try "
        "again.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert (await limiter.admit(ORG, MODEL, limits, 1_000)).allowed  # nothing was reserved


async def test_reservation_is_corrected_to_the_real_count(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(tpm=1_000)
    first = await limiter.admit(ORG, MODEL, limits, 900)
    assert first.reservation is not None
    assert not (await limiter.admit(ORG, MODEL, limits, 500)).allowed
    await limiter.finish(first.reservation, 100)  # the response used far less
    after = await limiter.admit(ORG, MODEL, limits, 500)
    assert after.allowed
    assert after.tokens is not None and after.tokens.remaining in (399, 400)


async def test_concurrency_slots_are_released(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(concurrency=2)
    held = [await limiter.admit(ORG, MODEL, limits, 1) for _ in range(2)]
    refused = await limiter.admit(ORG, MODEL, limits, 1)
    assert status_code(refused) == 429
    assert (
        "concurrent requests: Limit 2, Used 2, Requested 1"
        in error_body(refused, MODEL, "o")["error"]["message"]
    )
    assert held[0].reservation is not None
    await limiter.finish(held[0].reservation, 1)  # completed, failed or disconnected alike
    assert (await limiter.admit(ORG, MODEL, limits, 1)).allowed


async def test_monthly_quota(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(monthly_tokens=1_000)
    assert (await limiter.admit(ORG, MODEL, limits, 800)).allowed
    refused = await limiter.admit(ORG, MODEL, limits, 300)
    assert status_code(refused) == 429
    error = error_body(refused, MODEL, "acme")["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "Limit 1000, Used 800, Requested 300" in error["message"]
    assert int(rate_limit_headers(refused)["retry-after"]) > 0


async def test_quota_starts_from_the_recorded_usage(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(monthly_tokens=1_000)

    async def baseline(org_id: int, model: str, month_start: object) -> int:
        return 950

    limiter._quota_baseline = baseline
    refused = await limiter.admit(ORG, MODEL, limits, 100)
    assert refused.violation is not None and refused.violation.used == 950


async def test_limits_are_per_organisation_and_model(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(rpm=1)
    assert (await limiter.admit(1, "a", limits, 1)).allowed
    assert (await limiter.admit(1, "b", limits, 1)).allowed
    assert (await limiter.admit(2, "a", limits, 1)).allowed
    assert not (await limiter.admit(1, "a", limits, 1)).allowed


async def test_the_longest_wait_is_reported(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter()
    limits = LimitSet(rpm=1, rpd=1)
    assert (await limiter.admit(ORG, MODEL, limits, 1)).allowed
    refused = await limiter.admit(ORG, MODEL, limits, 1)
    assert refused.violation is not None and refused.violation.kind == "rpd"


async def test_leases_are_renewed_while_a_request_runs(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(concurrency_lease_ttl_s=0.6)
    limiter.start()
    limits = LimitSet(concurrency=1)
    assert (await limiter.admit(ORG, MODEL, limits, 1)).allowed
    await asyncio.sleep(1.5)  # two and a half lease lifetimes
    assert not (await limiter.admit(ORG, MODEL, limits, 1)).allowed
