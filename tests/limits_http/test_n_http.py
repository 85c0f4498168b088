"""``n`` choices under the limits: one reservation for n completions, one usage row, summed."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.support.chat import MODEL, prompt_tokens, reserved
from tests.support.stack import Stack

MESSAGES: Any = [{"role": "user", "content": "Hi"}]
PROMPT = reserved(0)  # what admission reserves for the prompt


async def test_n_reserves_n_completions_and_records_one_summed_row(stack: Stack) -> None:
    org = "lh-n-usage"
    async with stack.openai(stack.keys[org]) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, n=3, max_tokens=4, temperature=0
        )
        # The prompt once and a completion ceiling per choice.
        assert raw.headers["x-ratelimit-remaining-tokens"] == str(100_000 - PROMPT - 3 * 4)
        completion = raw.parse()
        assert completion.usage is not None
        row = await stack.usage_row(raw.headers["x-request-id"])
        assert row is not None and row.status == "ok"
        assert (row.prompt_tokens, row.completion_tokens) == (
            completion.usage.prompt_tokens,
            completion.usage.completion_tokens,
        )
        assert row.prompt_tokens == prompt_tokens()  # counted once, as OpenAI does

        streamed = await client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=MESSAGES,
            n=3,
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in streamed.parse()]
        usage = chunks[-1].usage
        row = await stack.usage_row(streamed.headers["x-request-id"])
        assert row is not None and row.status == "ok" and usage is not None
        assert (row.prompt_tokens, row.completion_tokens) == (
            usage.prompt_tokens,
            usage.completion_tokens,
        )
        assert len(await stack.usage(org)) == 2  # one row per request, not per choice


async def test_a_token_limit_one_completion_fits_but_n_do_not(stack: Stack) -> None:
    org = "lh-n-tokens"  # 2,000 tokens a minute
    async with stack.openai(stack.keys[org]) as client:
        # Larger than the limit itself: 413, as for any request that big, before any work.
        with pytest.raises(openai.APIStatusError) as too_large:
            await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, n=3, max_tokens=800, temperature=0
            )
        assert too_large.value.status_code == 413
        assert f"Requested {PROMPT + 3 * 800}" in too_large.value.message

        # A long prompt uses part of the minute's tokens, whatever the model answers.
        long: Any = [{"role": "user", "content": "Hi " * 200}]
        first = await client.chat.completions.create(
            model=MODEL, messages=long, max_tokens=1, temperature=0
        )
        assert first.usage is not None
        left = 2_000 - first.usage.total_tokens
        # Eight of these fit the limit but not what is left; one fits what is left.
        max_tokens = (2_000 - PROMPT) // 8
        assert PROMPT + max_tokens <= left < PROMPT + 8 * max_tokens - 100
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(
                model=MODEL, messages=MESSAGES, n=8, max_tokens=max_tokens, temperature=0
            )
        assert f"Requested {PROMPT + 8 * max_tokens}" in caught.value.message
        refused_id = caught.value.response.headers["x-request-id"]
        assert await stack.usage_row(refused_id) is None  # refused before any work

        one = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, n=1, max_tokens=max_tokens, temperature=0
        )
        assert one.choices[0].message.content is not None
