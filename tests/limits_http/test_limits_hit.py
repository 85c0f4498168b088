"""Each limit hit through `visiongate serve`: status, Groq's headers and body, and the rows."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import openai
import pytest

from tests.support.chat import MODEL, chat, open_stream, reserved
from tests.support.stack import Stack

DURATION = r"(\d+h)?(\d+m)?(\d+(\.\d{1,2})?s|\d+0ms)"
GROQ_HEADERS = ("limit", "remaining", "reset")


def where(org: str) -> str:
    return f"for model `{MODEL}` in organization `{org}`"


def assert_rate_headers(headers: httpx.Headers, requests: bool = True, tokens: bool = True) -> None:
    """Groq's six x-ratelimit-* headers (those of unlimited windows absent)."""
    for window, present in (("requests", requests), ("tokens", tokens)):
        for part in GROQ_HEADERS:
            name = f"x-ratelimit-{part}-{window}"
            assert (name in headers) == present, (name, dict(headers))
        if present:
            assert int(headers[f"x-ratelimit-limit-{window}"]) > 0
            assert int(headers[f"x-ratelimit-remaining-{window}"]) >= 0
            assert re.fullmatch(DURATION, headers[f"x-ratelimit-reset-{window}"]), dict(headers)


def refused(exc: openai.APIStatusError) -> dict[str, Any]:
    """The error object of a refused request."""
    error: dict[str, Any] = exc.response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def create(client: openai.AsyncOpenAI, max_tokens: int, **extra: Any) -> Any:
    """A chat completion with its raw response (headers), through the SDK."""
    return await client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=max_tokens,
        temperature=0,
        **extra,
    )


async def test_headers_on_every_authenticated_response(stack: Stack) -> None:
    org = "lh-headers"
    async with stack.openai(stack.keys[org]) as client:
        plain = await create(client, 1)
        assert_rate_headers(plain.headers)
        assert "retry-after" not in plain.headers
        assert plain.headers["x-ratelimit-limit-requests"] == "1000"
        assert plain.headers["x-ratelimit-limit-tokens"] == "100000"
        assert plain.headers["x-ratelimit-remaining-tokens"] == str(100_000 - reserved(1))

        streamed = await create(client, 3, stream=True)
        assert_rate_headers(streamed.headers)
        chunks = [chunk async for chunk in streamed.parse()]
        assert chunks[-1].choices[0].finish_reason == "length"

    # An error after admission (media intake refuses a file:// URL) carries them too.
    async with stack.http(stack.keys[org]) as http:
        body = chat(1)
        body["messages"][0]["content"] = [
            {"type": "text", "text": "Hi"},
            {"type": "image_url", "image_url": {"url": "file:///etc/hostname"}},
        ]
        failed = await http.post("/openai/v1/chat/completions", json=body)
    assert failed.status_code == 400, failed.text
    assert failed.json()["error"]["type"] == "invalid_request_error"
    assert_rate_headers(failed.headers)
    assert "retry-after" not in failed.headers

    # One request per day used by each: the day window counts down exactly.
    remaining = [
        int(response.headers["x-ratelimit-remaining-requests"])
        for response in (plain, streamed, failed)
    ]
    assert remaining == [999, 998, 997]


async def test_requests_per_minute(stack: Stack) -> None:
    org = "lh-rpm"
    async with stack.openai(stack.keys[org]) as client:
        for _ in range(2):
            assert (await create(client, 1)).http_response.status_code == 200
        with pytest.raises(openai.RateLimitError) as caught:
            await create(client, 1)
    error = refused(caught.value)
    assert (error["type"], error["code"], error["param"]) == (
        "requests",
        "rate_limit_exceeded",
        None,
    )
    match = re.fullmatch(
        rf"Rate limit reached {re.escape(where(org))} on requests per minute \(RPM\): "
        rf"Limit 2, Used 2, Requested 1\. Please try again in ({DURATION})\.",
        error["message"],
    )
    assert match, error["message"]
    headers = caught.value.response.headers
    # One request's share of a minute at 2 RPM is 30 s; the first was admitted just now.
    assert headers["retry-after"] == "30"
    assert 29 <= float(match.group(1).rstrip("s")) <= 30
    assert_rate_headers(headers)
    assert headers["x-ratelimit-remaining-requests"] == "998"
    assert len(await stack.usage(org)) == 2  # nothing recorded for a refused request


async def test_requests_per_day(stack: Stack) -> None:
    org = "lh-rpd"
    async with stack.openai(stack.keys[org]) as client:
        for _ in range(2):
            assert (await create(client, 1)).http_response.status_code == 200
        with pytest.raises(openai.RateLimitError) as caught:
            await create(client, 1)
    error = refused(caught.value)
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded"
    assert re.fullmatch(
        rf"Rate limit reached {re.escape(where(org))} on requests per day \(RPD\): "
        rf"Limit 2, Used 2, Requested 1\. Please try again in 11h59m\d+(\.\d+)?s\.",
        error["message"],
    ), error["message"]
    headers = caught.value.response.headers
    assert headers["retry-after"] == "43200"  # half a day: one request's share of it
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert_rate_headers(headers)


async def test_tokens_per_minute_and_a_request_larger_than_it(stack: Stack) -> None:
    org = "lh-tpm"
    async with stack.openai(stack.keys[org]) as client:
        with pytest.raises(openai.APIStatusError) as too_large:
            await create(client, 2_000)
        first = await create(client, 600)
        with pytest.raises(openai.RateLimitError) as caught:
            await create(client, 900)

    assert too_large.value.status_code == 413
    error = refused(too_large.value)
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert error["message"] == (
        f"Request too large {where(org)} on tokens per minute (TPM): Limit 1000, "
        f"Requested {reserved(2_000)}, please reduce your message size and try again."
    )
    assert "retry-after" not in too_large.value.response.headers

    # Nothing was reserved for the 413: the next request finds the bucket full.
    assert first.headers["x-ratelimit-remaining-tokens"] == str(1_000 - reserved(600))
    used_by_first = first.parse().usage.total_tokens

    error = refused(caught.value)
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    match = re.fullmatch(
        rf"Rate limit reached {re.escape(where(org))} on tokens per minute \(TPM\): "
        rf"Limit 1000, Used (\d+), Requested {reserved(900)}\. "
        rf"Please try again in ({DURATION})\.",
        error["message"],
    )
    assert match, error["message"]
    # Used: the first request's real tokens (settled after it ended), minus what came back.
    assert 1_000 - reserved(900) < int(match.group(1)) <= used_by_first
    retry_after = int(caught.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert_rate_headers(caught.value.response.headers)
    assert [row.status for row in await stack.usage(org)] == ["ok"]


async def test_tokens_per_day(stack: Stack) -> None:
    org = "lh-tpd"
    async with stack.openai(stack.keys[org]) as client:
        first = await create(client, 300)
        with pytest.raises(openai.RateLimitError) as caught:
            await create(client, 900)
        with pytest.raises(openai.APIStatusError) as too_large:
            await create(client, 1_500)
    used = first.parse().usage.total_tokens
    error = refused(caught.value)
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert re.fullmatch(
        rf"Rate limit reached {re.escape(where(org))} on tokens per day \(TPD\): "
        rf"Limit 1000, Used {used}, Requested {reserved(900)}\. "
        rf"Please try again in ({DURATION})\.",
        error["message"],
    ), error["message"]
    # 86.4 s per token at 1,000 per day: the excess takes hours to come back.
    assert int(caught.value.response.headers["retry-after"]) > 3_600
    # No per-minute token limit in this tier: no token headers, the day's requests still.
    assert_rate_headers(caught.value.response.headers, tokens=False)

    assert too_large.value.status_code == 413
    assert "tokens per day (TPD): Limit 1000, Requested" in refused(too_large.value)["message"]


async def test_monthly_quota(stack: Stack) -> None:
    assert stack.first is not None
    org = "lh-quota"
    async with stack.openai(stack.keys[org]) as client:
        first = await create(client, 300)
        with pytest.raises(openai.RateLimitError) as caught:
            await create(client, 900)
    used = first.parse().usage.total_tokens
    [row] = await stack.usage(org)
    assert row.prompt_tokens + row.completion_tokens == used

    error = refused(caught.value)
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert re.fullmatch(
        rf"You exceeded your current quota {re.escape(where(org))} on monthly tokens: "
        rf"Limit 1000, Used {used}, Requested {reserved(900)}\. The quota resets in {DURATION}\.",
        error["message"],
    ), error["message"]
    assert int(caught.value.response.headers["retry-after"]) >= 1

    # The other gateway process agrees: it starts from the usage recorded in the database
    # (SQLite, in-process limiter) or shares the counter (Redis).
    async with stack.openai(stack.keys[org], stack.first) as client:
        with pytest.raises(openai.RateLimitError) as elsewhere:
            await create(client, 900)
    assert f"Used {used}, Requested {reserved(900)}" in refused(elsewhere.value)["message"]


async def test_concurrency_slots_and_a_client_leaving_mid_stream(stack: Stack) -> None:
    org = "lh-concurrency"
    long = chat(2_000, stream=True)
    async with (
        stack.http(stack.keys[org]) as first_client,
        stack.http(stack.keys[org]) as second_client,
        stack.http(stack.keys[org]) as http,
    ):
        first = await open_stream(first_client, long)
        second = await open_stream(second_client, long)

        busy = await http.post("/v1/chat/completions", json=chat(1))
        assert busy.status_code == 429, busy.text
        error = busy.json()["error"]
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
        assert error["message"] == (
            f"Rate limit reached {where(org)} on concurrent requests: Limit 2, Used 2, "
            "Requested 1. Please try again in 1s."
        )
        assert busy.headers["retry-after"] == "1"
        assert_rate_headers(busy.headers)

        # The first client walks away mid-stream: its slot comes back.
        await first.aclose()
        left = time.monotonic()
        while True:
            next_one = await http.post("/v1/chat/completions", json=chat(1))
            if next_one.status_code == 200:
                break
            assert next_one.status_code == 429, next_one.text
            assert time.monotonic() - left < 5, "the slot of a client that left never came back"
            await asyncio.sleep(0.05)
        await second.aclose()

    # Both walked-away requests are recorded, with what was streamed, not max_tokens.
    deadline = time.monotonic() + 10
    while len(rows := await stack.usage(org)) < 3:
        assert time.monotonic() < deadline, [row.status for row in rows]
        await asyncio.sleep(0.05)
    statuses = sorted(row.status for row in rows)
    assert statuses == ["cancelled", "cancelled", "ok"]
    for row in rows:
        if row.status == "cancelled":
            assert 1 <= row.completion_tokens < 2_000
