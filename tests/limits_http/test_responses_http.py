"""The Responses API under the chat's limits: Groq's headers, the reservation, the usage row."""

from __future__ import annotations

from tests.limits_http.test_limits_hit import assert_rate_headers
from tests.support.chat import MODEL, reserved
from tests.support.stack import Stack


async def test_responses_carry_the_chat_limits_and_usage(stack: Stack) -> None:
    org = "lh-responses"
    async with stack.openai(stack.keys[org]) as client:
        raw = await client.responses.with_raw_response.create(
            model=MODEL, input="Hi", max_output_tokens=2, temperature=0
        )
        assert_rate_headers(raw.headers)
        # Admitted as the chat completion it means: the same estimate, the same reservation.
        assert raw.headers["x-ratelimit-remaining-tokens"] == str(100_000 - reserved(2))
        response = raw.parse()
        assert response.usage is not None
        row = await stack.usage_row(raw.headers["x-request-id"])
        assert row is not None and row.status == "ok"
        assert (row.prompt_tokens, row.completion_tokens) == (
            response.usage.input_tokens,
            response.usage.output_tokens,
        )
        assert raw.headers["x-request-id"] == "req_" + response.id.removeprefix("resp_")

        streamed = await client.responses.with_raw_response.create(
            model=MODEL, input="Hi", max_output_tokens=2, stream=True
        )
        assert_rate_headers(streamed.headers)
        events = [event async for event in streamed.parse()]
        last = events[-1].response  # type: ignore[union-attr]
        row = await stack.usage_row(streamed.headers["x-request-id"])
        assert row is not None and last.usage is not None
        assert row.completion_tokens == last.usage.output_tokens
