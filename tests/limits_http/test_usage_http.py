"""Usage through `visiongate serve`: one row per request with the response's token counts,
committed before the final chunk goes out; the token reservation settled to real usage."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import httpx
import pytest
from openai import APIStatusError

from gateway.db.models import UsageRecord
from tests.support.chat import MODEL, chat, image_message, open_stream, reserved
from tests.support.stack import Stack


def assert_row(row: UsageRecord | None, usage: dict[str, Any]) -> None:
    """A committed, successful row with exactly the response's token counts."""
    assert row is not None, "no usage row committed"
    assert (row.prompt_tokens, row.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert row.status == "ok"
    assert row.model == MODEL
    assert row.duration_ms > 0


async def test_one_row_per_request_with_the_final_counts(stack: Stack) -> None:
    org = "lh-usage"
    key = stack.keys[org]
    async with stack.openai(key) as client:
        plain = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=5
        )
        with_image = await client.chat.completions.create(
            model=MODEL,
            messages=[image_message()],  # type: ignore[list-item]
            max_tokens=2,
        )
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None

    rows = await stack.usage(org)
    by_id = {row.request_id: row for row in rows}
    assert len(rows) == len(by_id) == 3
    for response, usage in (
        (plain, plain.usage),
        (with_image, with_image.usage),
        (chunks[0], chunks[-1].usage),
    ):
        request_id = response.to_dict()["x_groq"]["id"]
        assert usage is not None
        assert_row(by_id[request_id], usage.to_dict())
    image_row = by_id[with_image.to_dict()["x_groq"]["id"]]
    assert image_row.images == 1
    assert len({row.key_id for row in rows}) == 1
    assert (await stack.key_row(key[:11])).id == rows[0].key_id


async def test_the_final_chunk_comes_after_the_row_is_committed(stack: Stack) -> None:
    org = "lh-final"
    body = chat(8, stream=True, stream_options={"include_usage": True})
    for _ in range(3):
        async with (
            stack.http(stack.keys[org]) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            assert response.status_code == 200
            request_id = finish = None
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                request_id = request_id or event.get("x_groq", {}).get("id")
                if event["choices"] and event["choices"][0]["finish_reason"]:
                    # Read the database the moment the finish chunk arrives.
                    assert request_id is not None
                    finish = event
                    row = await stack.usage_row(request_id)
                    break
            assert finish is not None, "no finish chunk"
            assert_row(row, finish["x_groq"]["usage"])


async def test_the_reservation_is_settled_to_real_usage(stack: Stack) -> None:
    org = "lh-reserve"  # 2,000 tokens per minute: 30 ms of refill per token
    key = stack.keys[org]
    async with stack.http(key) as http:
        # Admitted (the estimate of "Hi" and an image, and 1,000), then refused by intake.
        body = chat(1_000)
        body["messages"][0]["content"] = [
            {"type": "text", "text": "Hi"},
            {"type": "image_url", "image_url": {"url": "file:///etc/hostname"}},
        ]
        failed = await http.post("/v1/chat/completions", json=body)
        assert failed.status_code == 400
        left = failed.headers["x-ratelimit-remaining-tokens"]
        assert left == str(2_000 - reserved(1_000, images=1))

        # It used nothing, so all of it came back: the next request sees a full bucket.
        started = time.monotonic()
        small = await http.post("/v1/chat/completions", json=chat(1))
        assert small.headers["x-ratelimit-remaining-tokens"] == str(2_000 - reserved(1))

        # An image: the estimate (576 tokens an image) is far above what the default model's
        # tiny vision tower really takes, and the real count is what is charged.
        with_image = chat(50)
        with_image["messages"] = [image_message("Hi")]
        long = await http.post("/v1/chat/completions", json=with_image)
        probe = await http.post("/v1/chat/completions", json=chat(1))
        elapsed_ms = (time.monotonic() - started) * 1000

    small_used = small.json()["usage"]["total_tokens"]
    long_used = long.json()["usage"]["total_tokens"]
    assert long_used + 100 < reserved(50, images=1)  # so the two accountings differ
    charged = small_used + long_used + reserved(1)
    remaining = int(probe.headers["x-ratelimit-remaining-tokens"])
    assert 2_000 - charged - 1 <= remaining <= 2_000 - charged + elapsed_ms / 30 + 1

    rows = {row.request_id: row for row in await stack.usage(org)}
    assert len(rows) == 4
    failed_row = [row for row in rows.values() if row.status != "ok"]
    assert [(row.prompt_tokens, row.completion_tokens) for row in failed_row] == [(0, 0)]
    for response in (small, long, probe):
        data = response.json()
        assert_row(rows[data["x_groq"]["id"]], data["usage"])


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
async def test_graceful_shutdown_finishes_and_records_requests_in_flight(stack: Stack) -> None:
    org = "lh-drain"
    draining = stack.start("draining")
    async with stack.http(stack.keys[org], draining) as http:
        stream = await open_stream(http, chat(300, stream=True))
        plain = asyncio.create_task(http.post("/v1/chat/completions", json=chat(300)))
        await asyncio.sleep(0.2)  # both admitted and generating
        draining.process.terminate()  # SIGTERM: stop taking requests, finish these, flush
        events = [json.loads(line[6:]) async for line in stream.lines if line.startswith("data: {")]
        response = await plain
        # uvicorn re-raises the SIGTERM once it has shut down cleanly.
        assert await asyncio.to_thread(draining.process.wait, 60) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in draining.log_tail()
    assert response.status_code == 200, response.text
    finish = events[-1]
    assert finish["choices"][0]["finish_reason"] == "length"
    rows = {row.request_id: row for row in await stack.usage(org)}
    assert len(rows) == 2
    assert_row(rows[finish["x_groq"]["id"]], finish["x_groq"]["usage"])
    assert_row(rows[response.json()["x_groq"]["id"]], response.json()["usage"])


async def test_a_client_leaving_before_any_output_is_charged_its_prompt(stack: Stack) -> None:
    org = "lh-prefill"
    # A completion is sent whole at its end, and the default model rambles on this prompt
    # until max_tokens: the client below leaves while the model generates, before it has
    # seen anything.
    body = chat(1, "Tell me a story.")
    async with stack.http(stack.keys[org]) as http:
        finished = await http.post("/v1/chat/completions", json=body)
        assert finished.status_code == 200, finished.text
        prompt = finished.json()["usage"]["prompt_tokens"]
        with pytest.raises(httpx.ReadTimeout):
            await http.post(
                "/v1/chat/completions",
                json={**body, "max_tokens": 3_000},
                timeout=httpx.Timeout(60, read=2),
            )
    deadline = time.monotonic() + 30
    while len(rows := await stack.usage(org)) < 2:
        assert time.monotonic() < deadline, "the departed request's usage was never recorded"
        await asyncio.sleep(0.1)
    left = rows[1]
    assert left.status == "client_closed_request"
    # The model reported the prompt it took: the exact count, not an estimate, and not 0.
    assert (left.prompt_tokens, left.prompt_estimated) == (prompt, False)


async def test_without_max_tokens_the_reservation_is_what_generation_may_use(
    stack: Stack,
) -> None:
    # The default model's context is 4,096 tokens and so is default_max_tokens: whatever
    # the prompt, a request without max_tokens may use up to 4,096 tokens in all.
    body = chat()
    del body["max_tokens"]
    async with stack.openai(stack.keys["lh-unset-max"]) as client:
        with pytest.raises(APIStatusError) as refused:
            await client.chat.completions.create(**body)
    assert refused.value.status_code == 413
    assert "Limit 1100, Requested 4096" in refused.value.message

    async with (
        stack.http(stack.keys["lh-unset-max-fits"]) as http,
        http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["x-ratelimit-remaining-tokens"] == str(5_000 - 4_096)
