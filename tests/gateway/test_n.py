"""``n`` choices on chat completions, through the real `openai` SDK against the real stack."""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from gateway.api.choices import choice_seed
from gateway.triton_process import EmbeddedTriton
from tests.support.chat import MODEL
from tests.support.processes import GatewayProcess
from tests.support.schemas import PARAMETERS, WEATHER
from tests.support.triton_client import metric

MESSAGES: Any = [{"role": "user", "content": "Tell me three things about the sea."}]
MESSAGES_BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
SEED = 2**40 + 7
WEATHER_CALL: Any = {"type": "function", "function": {"name": "get_current_weather"}}


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)


def test_n_choices_are_the_answers_of_their_seeds_with_usage_summed(
    client: openai.OpenAI,
) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, n=3, max_tokens=12, seed=SEED
    )
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    # Each choice is the answer n=1 gives with that choice's seed (choice 0: the request's).
    alone = [
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=12, seed=choice_seed(SEED, i)
        )
        for i in range(3)
    ]
    assert choice_seed(SEED, 0) == SEED
    for choice, single in zip(completion.choices, alone, strict=True):
        assert choice.message.content == single.choices[0].message.content
        assert choice.finish_reason == single.choices[0].finish_reason
    usages = [single.usage for single in alone]
    assert completion.usage is not None and all(usages)
    # OpenAI counts the prompt once and every choice's completion tokens.
    assert {u.prompt_tokens for u in usages if u} == {completion.usage.prompt_tokens}
    assert completion.usage.completion_tokens == sum(u.completion_tokens for u in usages if u)
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    timings: Any = completion.usage
    assert 0 < timings.prompt_time <= timings.total_time
    assert timings.completion_time >= 0


def test_the_same_seed_gives_the_same_choices_and_none_gives_different_ones(
    client: openai.OpenAI,
) -> None:
    def texts(**extra: Any) -> list[str | None]:
        # Hot enough that even a confident model's samples differ by seed.
        completion = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, n=3, max_tokens=16, temperature=2, **extra
        )
        return [choice.message.content for choice in completion.choices]

    seeded = texts(seed=SEED)
    assert texts(seed=SEED) == seeded
    assert len(set(seeded)) == 3  # each choice its own seed
    assert texts(seed=SEED + 1) != seeded
    assert len(set(texts())) > 1  # unseeded choices draw fresh entropy each


def test_a_streamed_n_interleaves_its_choices_by_index(client: openai.OpenAI) -> None:
    asked: Any = {"model": MODEL, "messages": MESSAGES, "n": 3, "max_tokens": 48, "seed": SEED}
    whole = client.chat.completions.create(**asked)
    chunks = list(
        client.chat.completions.create(**asked, stream=True, stream_options={"include_usage": True})
    )
    content: dict[int, str] = defaultdict(str)
    finishes: dict[int, list[str]] = defaultdict(list)
    order: list[int] = []  # the index of each content chunk, in stream order
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices  # one choice per chunk, as OpenAI streams n
        assert choice.index not in finishes, "a choice's chunk after its finish"
        if choice.delta.content:
            content[choice.index] += choice.delta.content
            order.append(choice.index)
        if choice.finish_reason is not None:
            finishes[choice.index].append(choice.finish_reason)
    assert [content[i] for i in range(3)] == [c.message.content for c in whole.choices]
    assert dict(finishes) == {i: [whole.choices[i].finish_reason] for i in range(3)}
    # Generated at once: the choices' chunks interleave (one after another would switch twice).
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > 2, order
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None and whole.usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )


def _check_call(message: Any) -> str:
    """The message's one weather call, valid for the tool's schema; its id."""
    assert not message.content
    (call,) = message.tool_calls
    assert call.function.name == "get_current_weather"
    jsonschema.validate(json.loads(call.function.arguments), PARAMETERS["get_current_weather"])
    return str(call.id)


def test_a_forced_tool_call_in_each_of_n_choices(client: openai.OpenAI) -> None:
    asked: Any = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "n": 3,
        "tools": [WEATHER],
        "tool_choice": WEATHER_CALL,
        "parallel_tool_calls": False,
        "max_tokens": 2000,
        "seed": 11,
    }
    completion = client.chat.completions.create(**asked)
    assert [c.finish_reason for c in completion.choices] == ["tool_calls"] * 3
    ids = [_check_call(choice.message) for choice in completion.choices]
    assert len(set(ids)) == 3  # unique across the request's choices

    calls: dict[int, dict[str, str]] = defaultdict(lambda: {"name": "", "arguments": ""})
    reasons: dict[int, str | None] = {}
    for chunk in client.chat.completions.create(**asked, stream=True):
        (choice,) = chunk.choices
        for delta in choice.delta.tool_calls or ():
            assert delta.index == 0 and delta.function is not None
            calls[choice.index]["name"] += delta.function.name or ""
            calls[choice.index]["arguments"] += delta.function.arguments or ""
        if choice.finish_reason:
            reasons[choice.index] = choice.finish_reason
    assert reasons == {0: "tool_calls", 1: "tool_calls", 2: "tool_calls"}
    for i, choice in enumerate(completion.choices):
        (call,) = choice.message.tool_calls or []
        assert calls[i] == {"name": call.function.name, "arguments": call.function.arguments}


def test_logprobs_and_stop_per_choice(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        n=2,
        max_tokens=16,
        seed=SEED,
        logprobs=True,
        top_logprobs=2,
        stop=["e"],
    )
    for choice in completion.choices:
        assert choice.message.content is not None and "e" not in choice.message.content
        assert choice.logprobs is not None and choice.logprobs.content is not None
        for token in choice.logprobs.content:
            assert len(token.top_logprobs) == 2


def test_leaving_a_stream_of_n_cancels_every_choice_in_triton(
    gateway: GatewayProcess, triton: EmbeddedTriton
) -> None:
    def counter(name: str) -> float:
        return metric(triton.metrics_url, f"vlm_{name}_requests_total")

    cancelled, completed = counter("cancelled"), counter("completed")
    # Greedy, this prompt runs to the length limit: far longer than the test reads.
    body = {**MESSAGES_BODY, "n": 3, "stream": True, "temperature": 0, "max_tokens": 3000}
    with (
        httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        read = [line for _, line in zip(range(12), response.iter_lines(), strict=False) if line]
        assert len(read) >= 3  # three role chunks, then content
    deadline = time.monotonic() + 15
    while counter("cancelled") < cancelled + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counter("cancelled") == cancelled + 3
    assert counter("completed") == completed


@pytest.mark.parametrize(
    ("n", "code"), [(9, "integer_above_max_value"), (0, "integer_below_min_value")]
)
def test_n_outside_1_to_max_n_is_refused_naming_n(client: openai.OpenAI, n: int, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, n=n, max_tokens=1)
    assert (caught.value.param, caught.value.code) == ("n", code)
