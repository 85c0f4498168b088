"""``logprobs`` and ``top_logprobs`` on chat completions, through the real `openai` SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionTokenLogprob

from tests.support.chat import MODEL
from tests.support.processes import GatewayProcess

# Multi-byte characters the default model never saw in training (its vocabulary has no merges
# for them: one token per byte); its answer is the same at temperature 0 every time.
MESSAGES: Any = [{"role": "user", "content": "Say héllo in €uros, 日本語 ✓"}]


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)


def _joined(tokens: list[ChatCompletionTokenLogprob]) -> str:
    """The tokens' bytes joined and decoded as the gateway decodes text (partial chars: U+FFFD)."""
    return b"".join(bytes(t.bytes or []) for t in tokens).decode("utf-8", errors="replace")


def _check_token(token: ChatCompletionTokenLogprob, top: int) -> None:
    assert token.bytes is not None
    assert token.logprob <= 0.0
    assert len(token.top_logprobs) == top
    # Greedy: the chosen token is the likeliest, so no alternative beats it.
    assert all(token.logprob >= alt.logprob for alt in token.top_logprobs)
    try:
        assert token.token == bytes(token.bytes).decode()
    except UnicodeDecodeError:  # part of a UTF-8 character, written as OpenAI writes it
        assert token.token.startswith("bytes:\\x")


@pytest.mark.parametrize("top", [0, 3, 20])
def test_completion_logprobs(client: openai.OpenAI, top: int) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=24,
        temperature=0,
        logprobs=True,
        top_logprobs=top,
    )
    choice = completion.choices[0]
    assert choice.logprobs is not None
    assert choice.logprobs.refusal is None
    tokens = choice.logprobs.content
    assert tokens
    assert completion.usage is not None
    assert len(tokens) <= completion.usage.completion_tokens
    for token in tokens:
        _check_token(token, top)
    assert _joined(tokens) == choice.message.content


def test_logprobs_without_top_logprobs(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert all(t.top_logprobs == [] for t in logprobs.content)


def test_no_logprobs_unless_asked(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    assert completion.choices[0].logprobs is None


def test_streamed_logprobs_match_the_completion(client: openai.OpenAI) -> None:
    asked: Any = {"max_tokens": 24, "temperature": 0, "logprobs": True, "top_logprobs": 2}
    whole = client.chat.completions.create(model=MODEL, messages=MESSAGES, **asked)
    chunks = list(
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **asked)
    )
    tokens: list[ChatCompletionTokenLogprob] = []
    for chunk in chunks:
        choice = chunk.choices[0]
        if choice.delta.content:
            assert choice.logprobs is not None and choice.logprobs.content is not None
            # Each chunk carries the tokens of its own delta.
            assert _joined(choice.logprobs.content) == choice.delta.content
            tokens.extend(choice.logprobs.content)
    for token in tokens:
        _check_token(token, 2)
    assert whole.choices[0].logprobs is not None
    assert tokens == whole.choices[0].logprobs.content
    assert _joined(tokens) == whole.choices[0].message.content


# A schema that leaves one answer: the model must spell out multi-byte characters, one byte
# (token) at a time, whatever its weights.
ONLY_NIHON: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "word",
        "schema": {
            "type": "object",
            "properties": {"w": {"const": "日本"}},
            "required": ["w"],
            "additionalProperties": False,
        },
    },
}


def test_guided_logprobs_are_of_the_constrained_distribution(client: openai.OpenAI) -> None:
    asked: Any = {
        "max_tokens": 40,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 5,
        "response_format": ONLY_NIHON,
    }
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, **asked)
    content = completion.choices[0].message.content
    assert content is not None and "日本" in content
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert _joined(logprobs.content) == content
    # Inside the characters the grammar allows one byte only: certain, and no alternative.
    partial = [t for t in logprobs.content if t.token.startswith("bytes:")]
    assert b"".join(bytes(t.bytes or []) for t in partial) == "日本".encode()
    assert len(partial) == 6  # no merges for these characters: one token per byte
    for token in partial:
        assert token.logprob == 0.0
        assert [alt.token for alt in token.top_logprobs] == [token.token]
    # Streamed, the bytes of a character travel together, with the delta that completes it.
    chunks = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **asked)
    for chunk in chunks:
        choice = chunk.choices[0]
        if choice.delta.content:
            assert choice.logprobs is not None and choice.logprobs.content is not None
            assert _joined(choice.logprobs.content) == choice.delta.content
            assert "\ufffd" not in choice.delta.content


@pytest.mark.parametrize(
    ("asked", "why"),
    [
        ({"logprobs": True, "top_logprobs": 21}, "between 0 and 20"),
        ({"logprobs": True, "top_logprobs": -1}, "between 0 and 20"),
        ({"top_logprobs": 2}, "only allowed when `logprobs` is true"),
        ({"logprobs": False, "top_logprobs": 2}, "only allowed when `logprobs` is true"),
    ],
)
def test_bad_top_logprobs_are_refused(client: openai.OpenAI, asked: Any, why: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2, **asked)
    assert caught.value.param == "top_logprobs"
    assert why in caught.value.message
