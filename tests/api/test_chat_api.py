"""The chat endpoint in-process: JSON and SSE answers, error mapping, usage exactly once."""

from __future__ import annotations

import asyncio
import threading

from gateway.errors import BackendUnavailable
from tests.support.app import Api, chat, sse_events, usage_rows
from tests.support.chat import MODEL


async def test_a_completion_is_openai_shaped_and_recorded_once(api: Api) -> None:
    response = await api.client.post("/v1/chat/completions", json=chat(), headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello world"}
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (7, 2, 9)
    assert usage["total_time"] >= 0 and usage["queue_time"] >= 0
    (row,) = await usage_rows(api.database_url, body["x_groq"]["id"])
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("ok", 7, 2)
    assert not row.prompt_estimated
    (call,) = api.backend.calls
    assert call.restartable and call.closed
    assert call.request.max_tokens == 4096  # the default, as the request set none


async def test_a_stream_is_framed_as_openai_and_groq_send_it(api: Api) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    response = await api.client.post("/v1/chat/completions", json=body, headers=api.auth())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    opening, *deltas, finish, usage_only, _ = events
    assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert opening["x_groq"]["id"].startswith("req_")
    assert [d["choices"][0]["delta"]["content"] for d in deltas] == ["Hello", " world"]
    assert all(d["usage"] is None for d in [opening, *deltas, finish])  # include_usage
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert finish["x_groq"]["usage"]["completion_tokens"] == 2
    assert usage_only["choices"] == [] and usage_only["usage"]["total_tokens"] == 9
    (row,) = await usage_rows(api.database_url, opening["x_groq"]["id"])
    assert (row.status, row.completion_tokens) == ("ok", 2)
    assert not api.backend.calls[0].restartable  # a stream's output is shown as it comes


async def test_tool_calls_stream_as_deltas_without_content(api: Api) -> None:
    api.backend.deltas = []
    api.backend.finish_reason = "tool_calls"
    api.backend.tool_calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    body = chat(stream=True, tools=tools, tool_choice="required")
    response = await api.client.post("/v1/chat/completions", json=body, headers=api.auth())
    assert response.status_code == 200, response.text
    opening, *calls, finish, done = sse_events(response.text)
    assert opening["choices"][0]["delta"] == {"role": "assistant"}  # no content to come
    first = calls[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["function"]["name"] == "get_weather"
    assert finish["choices"][0]["finish_reason"] == "tool_calls" and done == "[DONE]"


async def test_bad_input_is_a_400_naming_the_parameter(api: Api) -> None:
    response = await api.client.post(
        "/v1/chat/completions", json=chat(temperature=3), headers=api.auth()
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "temperature")
    assert not api.backend.calls


async def test_unknown_model_and_key_are_404_and_401(api: Api) -> None:
    response = await api.client.post(
        "/v1/chat/completions", json=chat(model="nope"), headers=api.auth()
    )
    assert response.status_code == 404 and response.json()["error"]["param"] == "model"
    response = await api.client.post(
        "/v1/chat/completions", json=chat(), headers={"authorization": "Bearer gsk_wrong"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_a_backend_error_before_output_is_http_with_the_limit_headers(api: Api) -> None:
    api.backend.fail_with = BackendUnavailable("Triton is down.", retry_after_s=3)
    response = await api.client.post(
        "/v1/chat/completions", json=chat(stream=True, max_tokens=100), headers=api.auth("tight")
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-ratelimit-limit-tokens"] == "2000"
    (row,) = await usage_rows(api.database_url, response.headers["x-request-id"])
    # The model took the prompt (its Prefill) before failing: it is charged, exactly.
    assert (row.status, row.prompt_tokens, row.prompt_estimated) == ("model_unavailable", 7, False)
    await _admits_again(api)


async def test_a_backend_error_mid_stream_is_an_error_event(api: Api) -> None:
    api.backend.fail_with = BackendUnavailable("Triton went away.", retry_after_s=1)
    api.backend.fail_after = 1
    response = await api.client.post(
        "/v1/chat/completions", json=chat(stream=True, max_tokens=100), headers=api.auth("tight")
    )
    assert response.status_code == 200
    *_, last = sse_events(response.text)
    assert last["error"]["code"] == "model_unavailable"
    (row,) = await usage_rows(api.database_url, response.headers["x-request-id"])
    assert (row.status, row.completion_tokens) == ("model_unavailable", 1)
    await _admits_again(api)


async def test_a_restarted_answer_counts_only_its_last_attempt(api: Api) -> None:
    api.backend.restart = True
    response = await api.client.post("/v1/chat/completions", json=chat(), headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello world"
    (row,) = await usage_rows(api.database_url, body["x_groq"]["id"])
    assert row.completion_tokens == 2


async def test_limits_render_groq_headers_413_and_429(api: Api) -> None:
    too_large = await api.client.post(
        "/v1/chat/completions", json=chat(max_tokens=3_000), headers=api.auth("tight")
    )
    assert too_large.status_code == 413, too_large.text
    error = too_large.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert error["message"].startswith(f"Request too large for model `{MODEL}`")
    assert "retry-after" not in too_large.headers

    api.backend.hold = threading.Event()
    held = asyncio.create_task(api.post_elsewhere(chat(max_tokens=100), "tight"))
    assert await asyncio.to_thread(api.backend.started.wait, 30)
    busy = await api.client.post(
        "/v1/chat/completions", json=chat(max_tokens=100), headers=api.auth("tight")
    )
    assert busy.status_code == 429, busy.text
    error = busy.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "on concurrent requests: Limit 1, Used 1, Requested 1" in error["message"]
    assert busy.headers["retry-after"] == "1"
    assert busy.headers["x-ratelimit-limit-tokens"] == "2000"
    api.backend.hold.set()
    assert (await held).status_code == 200


async def _admits_again(api: Api) -> None:
    """The tight tier's one slot was freed: the next request is admitted."""
    api.backend.fail_with = None
    response = await api.client.post(
        "/v1/chat/completions", json=chat(max_tokens=100), headers=api.auth("tight")
    )
    assert response.status_code == 200, response.text
