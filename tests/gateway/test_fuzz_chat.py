"""A property-based fuzz of ``POST /v1/chat/completions`` over HTTP, with a fixed seed.

Requests are generated around the real schema, valid and not: wrong types, nesting, huge
numbers, odd strings and control tokens, unknown fields, bad media URLs (no network: loopback
URLs are refused by the SSRF guard) and bodies that are not JSON or not UTF-8. Whatever comes
in, the answer is never a 5xx, an error is OpenAI-shaped, and the service is healthy after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.chat import MODEL
from tests.support.media import image_data_uri
from tests.support.processes import GatewayProcess

CHAT = "/v1/chat/completions"

CONTROL = ["<image>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "</tool_call>"]
ODD = ["<video>", "\x00", "\u202e", "\ufeff", "{{ 7 * 7 }}", "{% raw %}", "\U0010ffff", "\\", '"']

text = st.one_of(
    st.text(max_size=24),
    st.lists(st.one_of(st.sampled_from(CONTROL + ODD), st.text(max_size=6)), max_size=5).map(
        "".join
    ),
)
huge = st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**30, 1e308, -1e-308, 5e-324])
numbers = st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False), huge)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
deep = st.integers(1, 200).map(lambda n: json.loads("[" * n + "]" * n))

URLS = [
    image_data_uri(),
    "http://127.0.0.1:9/a.png",
    "https://localhost/a.png",
    "http://[::1]/a.png",
    "http://10.0.0.1/a.png",
    "file:///etc/passwd",
    "data:image/png;base64,AAAA",
    "data:image/png;base64,!!!",
    "data:image/svg+xml;base64,PHN2Zy8+",
    "data:video/mp4;base64,AAAAIGZ0eXA=",
    "data:,",
    "ftp://127.0.0.1/a.png",
    "javascript:alert(1)",
    "",
]
urls = st.one_of(st.sampled_from(URLS), text)

parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.one_of(text, junk)}),
    st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": urls})},
        optional={"detail": st.sampled_from(["auto", "low", "high", "max"])},
    ),
    st.fixed_dictionaries(
        {"type": st.just("video_url"), "video_url": st.fixed_dictionaries({"url": urls})}
    ),
    st.fixed_dictionaries({"type": st.just("video"), "video": urls}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_audio", "file", "bogus"]), "input_audio": junk}
    ),
    junk,
)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {
            "id": text,
            "type": st.sampled_from(["function", "bogus"]),
            "function": st.fixed_dictionaries(
                {"name": st.one_of(st.just("look"), text), "arguments": st.one_of(text, junk)}
            ),
        }
    ),
    max_size=2,
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "developer", "assistant", "tool", "bogus"]),
        "content": st.one_of(text, st.lists(parts, max_size=3), st.none(), junk),
    },
    optional={"name": text, "tool_calls": st.one_of(tool_calls, junk), "tool_call_id": text},
)
schemas = st.one_of(
    st.just({"type": "object", "properties": {"at": {"type": "string"}}}),
    st.fixed_dictionaries({"type": st.sampled_from(["object", "array", "string", "nope"])}),
    st.dictionaries(st.sampled_from(["type", "enum", "items", "$ref", "$schema"]), junk),
    junk,
    deep,
)
tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["function", "bogus"]),
            "function": st.fixed_dictionaries(
                {"name": st.one_of(st.just("look"), text)},
                optional={"parameters": schemas, "description": text},
            ),
        }
    ),
    max_size=2,
)
response_format = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema", "x"])}),
    st.fixed_dictionaries(
        {
            "type": st.just("json_schema"),
            "json_schema": st.fixed_dictionaries({"name": text, "schema": schemas}),
        }
    ),
    junk,
)
# Small enough that a valid request generates only a few tokens.
few_tokens = st.one_of(
    st.integers(1, 3), st.integers(max_value=0), st.floats(allow_nan=False), text, junk
)
# Any value, of the right type or not, for every field of the schema.
any_fields = {
    "max_tokens": few_tokens,
    "temperature": numbers,
    "top_p": numbers,
    "seed": numbers,
    "presence_penalty": numbers,
    "frequency_penalty": numbers,
    "stop": st.one_of(text, st.lists(text, max_size=5), junk),
    "n": numbers,
    "stream": st.one_of(st.booleans(), junk),
    "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": junk}), junk),
    "user": st.one_of(text, junk),
    "response_format": response_format,
    "tools": st.one_of(tools, junk),
    "tool_choice": st.one_of(
        st.sampled_from(["none", "auto", "required", "bogus"]),
        st.just({"type": "function", "function": {"name": "look"}}),
        junk,
    ),
    "parallel_tool_calls": st.one_of(st.booleans(), junk),
    "video_fps": numbers,
    "video_max_frames": numbers,
    "logprobs": junk,
    "top_logprobs": numbers,
    "logit_bias": junk,
    "unknown_field": st.one_of(junk, deep),
}
any_required = {
    "model": st.one_of(st.just(MODEL), text, junk),
    "messages": st.one_of(st.lists(message, min_size=1, max_size=3), junk, deep),
    "max_completion_tokens": few_tokens,
}
anything = st.fixed_dictionaries(any_required, optional=any_fields)

# Valid requests, so that most examples get past parsing to intake, templates and the model.
LOOK = {
    "type": "function",
    "function": {
        "name": "look",
        "parameters": {"type": "object", "properties": {"at": {"type": "string"}}},
    },
}
valid_parts = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.just({"type": "image_url", "image_url": {"url": image_data_uri()}}),
)
valid_messages = st.lists(
    st.one_of(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": text}),
        st.fixed_dictionaries(
            {"role": st.just("user"), "content": st.lists(valid_parts, min_size=1, max_size=3)}
        ),
        st.fixed_dictionaries(
            {
                "role": st.just("assistant"),
                "content": text,
                "tool_calls": st.lists(
                    st.fixed_dictionaries(
                        {
                            "id": st.just("call_1"),
                            "type": st.just("function"),
                            "function": st.fixed_dictionaries(
                                {
                                    "name": st.just("look"),
                                    "arguments": st.builds(lambda at: json.dumps({"at": at}), text),
                                }
                            ),
                        }
                    ),
                    max_size=1,
                ),
            }
        ),
        st.fixed_dictionaries(
            {"role": st.just("tool"), "tool_call_id": st.just("call_1"), "content": text}
        ),
    ),
    min_size=1,
    max_size=4,
)
valid = st.fixed_dictionaries(
    {
        "model": st.just(MODEL),
        "messages": valid_messages,
        "max_completion_tokens": st.integers(1, 3),
    },
    optional={
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "presence_penalty": st.floats(-2, 2),
        "stop": st.lists(text, max_size=4),
        "stream": st.booleans(),
        "response_format": st.sampled_from(
            [
                {"type": "json_object"},
                {"type": "json_schema", "json_schema": {"name": "x", "schema": LOOK["function"]}},
            ]
        ),
        "tools": st.just([LOOK]),
        "tool_choice": st.sampled_from(
            ["none", "auto", "required", {"type": "function", "function": {"name": "look"}}]
        ),
    },
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with one field set to any value."""
    document = draw(valid)
    fields = {**any_required, **any_fields}
    field = draw(st.sampled_from(sorted(fields)))
    document[field] = draw(fields[field])
    return document


def _encode(document: Any, mangle: str) -> bytes:
    body = json.dumps(document).encode()
    if mangle == "truncate":
        return body[: len(body) // 2]
    if mangle == "not utf-8":
        return body.replace(b'"', b'"\xff', 3)
    if mangle == "not json":
        return b"model=" + body
    return body


bodies = st.builds(
    _encode,
    st.one_of(valid, mutated(), anything),
    st.sampled_from(["none"] * 10 + ["truncate", "not utf-8", "not json"]),
)


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=120) as client:
        yield client


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)
        assert error["param"] is None or isinstance(error["param"], str)
        assert error["code"] is None or isinstance(error["code"], str)


@settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=bodies)
def test_fuzz_chat(http: httpx.Client, body: bytes) -> None:
    response = http.post(CHAT, content=body, headers={"content-type": "application/json"})
    _check(response)


def test_healthy_after_fuzz(http: httpx.Client) -> None:
    assert http.get("/healthz").status_code == 200
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    response = http.post(CHAT, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["role"] == "assistant"
