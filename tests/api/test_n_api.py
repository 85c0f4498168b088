"""``n`` choices in-process: one admission, one backend call per choice, their answers merged."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator

import pytest

from gateway.api.choices import choice_seed, merged
from gateway.errors import BackendUnavailable
from tests.support.app import Api, call, chat, sse_events, usage_rows


async def test_n_choices_come_by_index_with_usage_summed_and_recorded_once(api: Api) -> None:
    response = await api.client.post("/v1/chat/completions", json=chat(n=3), headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    for choice in body["choices"]:
        assert choice["message"] == {"role": "assistant", "content": "Hello world"}
        assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    # The prompt once (as OpenAI counts it), every choice's completion tokens.
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (7, 6, 13)
    (row,) = await usage_rows(api.database_url, body["x_groq"]["id"])
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("ok", 7, 6)
    assert len(api.backend.calls) == 3
    assert all(call.restartable and call.closed for call in api.backend.calls)


async def test_each_choice_has_its_own_seed_from_the_requests(api: Api) -> None:
    for _ in range(2):
        response = await api.client.post(
            "/v1/chat/completions", json=chat(n=3, seed=2**63 - 1), headers=api.auth()
        )
        assert response.status_code == 200, response.text
    seeds = [call.request.seed for call in api.backend.calls]
    first, again = seeds[:3], seeds[3:]
    assert sorted(first, key=str) == sorted(again, key=str)  # the same request, the same seeds
    assert set(first) == {2**63 - 1, choice_seed(2**63 - 1, 1), choice_seed(2**63 - 1, 2)}
    assert len(set(first)) == 3
    assert all(seed is not None and -(2**63) <= seed < 2**63 for seed in first)

    api.backend.calls.clear()
    response = await api.client.post("/v1/chat/completions", json=chat(n=2), headers=api.auth())
    assert response.status_code == 200, response.text
    assert [call.request.seed for call in api.backend.calls] == [None, None]  # fresh entropy


async def test_a_stream_of_n_choices_is_framed_as_openai_sends_it(api: Api) -> None:
    body = chat(n=2, stream=True, stream_options={"include_usage": True})
    response = await api.client.post("/v1/chat/completions", json=body, headers=api.auth())
    assert response.status_code == 200, response.text
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(len(c["choices"]) == 1 for c in chunks[:-1])  # one choice per chunk
    assert [c["choices"][0]["delta"] for c in chunks[:2]] == [
        {"role": "assistant", "content": ""}
    ] * 2
    assert [c["choices"][0]["index"] for c in chunks[:2]] == [0, 1]
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == index]
        assert "".join(c["delta"].get("content") or "" for c in mine) == "Hello world"
        finishes = [c for c in mine if c["finish_reason"] is not None]
        assert [c["finish_reason"] for c in finishes] == ["stop"]
        assert mine[-1] is finishes[0]  # nothing of a choice after its finish
    finish_chunks = [c for c in chunks[:-1] if c["choices"][0]["finish_reason"]]
    # The last finish carries Groq's usage, then the usage chunk.
    assert "x_groq" not in finish_chunks[0]
    assert finish_chunks[1]["x_groq"]["usage"]["completion_tokens"] == 4
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 11
    assert all(c["usage"] is None for c in chunks[:-1])
    (row,) = await usage_rows(api.database_url, chunks[0]["x_groq"]["id"])
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("ok", 7, 4)


async def test_tool_calls_of_n_choices_have_ids_unique_in_the_request(api: Api) -> None:
    api.backend.deltas = []
    api.backend.finish_reason = "tool_calls"
    api.backend.tool_calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    body = chat(n=3, tools=tools, tool_choice="required")
    response = await api.client.post("/v1/chat/completions", json=body, headers=api.auth())
    assert response.status_code == 200, response.text
    choices = response.json()["choices"]
    ids = set()
    for choice in choices:
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        ids.add(call["id"])
    assert len(ids) == 3

    response = await api.client.post(
        "/v1/chat/completions", json=body | {"stream": True}, headers=api.auth()
    )
    chunks = sse_events(response.text)[:-1]
    assert all(c["choices"][0]["delta"] == {"role": "assistant"} for c in chunks[:3])
    streamed: dict[int, str] = {}
    for c in chunks:
        for delta in c["choices"][0]["delta"].get("tool_calls") or ():
            if "id" in delta:
                streamed[c["choices"][0]["index"]] = delta["id"]
    assert sorted(streamed) == [0, 1, 2] and len(set(streamed.values())) == 3


async def test_a_restarted_choice_counts_only_its_new_answer(api: Api) -> None:
    api.backend.restart = True
    response = await api.client.post("/v1/chat/completions", json=chat(n=2), headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["message"]["content"] for c in body["choices"]] == ["Hello world"] * 2
    (row,) = await usage_rows(api.database_url, body["x_groq"]["id"])
    assert row.completion_tokens == 4


async def test_a_failing_choice_stops_them_all_and_is_recorded_once(api: Api) -> None:
    api.backend.fail_with = BackendUnavailable("Triton went away", retry_after_s=1)
    api.backend.fail_after = 1
    response = await api.client.post("/v1/chat/completions", json=chat(n=4), headers=api.auth())
    assert response.status_code == 503, response.text
    (row,) = await usage_rows(api.database_url, response.headers["x-request-id"])
    assert row.status == "model_unavailable"
    assert len(api.backend.calls) == 4
    assert all(call.closed for call in api.backend.calls)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_leaving_stops_every_choice_and_is_recorded_once(
    api: Api, stream: bool
) -> None:
    api.backend.hold = threading.Event()

    async def leave() -> None:  # once every choice is generating
        while len(api.backend.calls) < 3 or not api.backend.started.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    body = json.dumps(chat(n=3, max_tokens=100, stream=stream)).encode()
    sent = await api.in_app_loop(lambda: call(api.app, body, api.keys["tight"], leave=leave))
    assert sent.status == 499
    (row,) = await usage_rows(api.database_url, sent.headers["x-request-id"])
    assert (row.status, row.prompt_tokens, row.completion_tokens) == ("client_closed_request", 7, 0)
    assert all(call.closed for call in api.backend.calls)
    api.backend.hold = None  # its one concurrency slot is free again
    response = await api.client.post(
        "/v1/chat/completions", json=chat(n=3, max_tokens=100), headers=api.auth("tight")
    )
    assert response.status_code == 200, response.text


async def test_merged_streams_stop_together_when_one_fails() -> None:
    closed: list[int] = []
    forever = asyncio.Event()

    async def stream(index: int) -> AsyncGenerator[str, None]:
        try:
            yield f"{index}a"
            if index == 1:
                raise BackendUnavailable("gone", retry_after_s=1)
            await forever.wait()
            yield f"{index}b"
        finally:
            closed.append(index)

    seen = []
    with pytest.raises(BackendUnavailable):
        async for item in merged([stream(i) for i in range(3)]):
            seen.append(item)
    assert seen == [(0, "0a"), (1, "1a")]  # in the order they came, up to the error
    assert sorted(closed) == [0, 1, 2]  # the two still waiting were cancelled and closed


async def test_n_reserves_a_completion_ceiling_per_choice(api: Api) -> None:
    # The tight tier allows 2,000 tokens a minute: one 900-token completion fits, three not.
    body = chat(n=3, max_tokens=900)
    response = await api.client.post("/v1/chat/completions", json=body, headers=api.auth("tight"))
    assert response.status_code == 413, response.text
    assert "Requested 27" in response.json()["error"]["message"]  # 3 × 900 + the prompt
    assert api.backend.calls == []
    response = await api.client.post(
        "/v1/chat/completions", json=body | {"n": 1}, headers=api.auth("tight")
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("n", "code"),
    [
        (0, "integer_below_min_value"),
        (-1, "integer_below_min_value"),
        (9, "integer_above_max_value"),
        (10**20, "integer_above_max_value"),
    ],
)
async def test_n_outside_1_to_max_n_is_a_400_naming_n(api: Api, n: int, code: str) -> None:
    response = await api.client.post("/v1/chat/completions", json=chat(n=n), headers=api.auth())
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("n", code)
    assert api.backend.calls == []


@pytest.mark.parametrize("n", [2.5, "3", True, [2]])
async def test_n_that_is_not_an_integer_is_a_400_naming_n(api: Api, n: object) -> None:
    response = await api.client.post("/v1/chat/completions", json=chat(n=n), headers=api.auth())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "n"


async def test_n_up_to_max_n_works(api: Api) -> None:
    response = await api.client.post("/v1/chat/completions", json=chat(n=8), headers=api.auth())
    assert response.status_code == 200, response.text
    assert [c["index"] for c in response.json()["choices"]] == list(range(8))
