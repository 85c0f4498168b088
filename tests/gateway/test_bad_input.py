"""Client input that once crashed the service is a 400 naming the parameter, and logs no traceback.

Deep JSON, bodies that are not UTF-8, deep or huge JSON Schemas, numbers out of every sane
range; and control tokens in text (``<image>``, ``<|im_end|>``), which reach the model as the
plain text they are, with or without images.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from tests.support.chat import MODEL, image_message, processor
from tests.support.processes import GatewayProcess

CHAT = "/v1/chat/completions"
BASE = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)


@pytest.fixture
def quiet_log(gateway: GatewayProcess) -> Iterator[None]:
    """Fails the test if the gateway logs a traceback or an unhandled error meanwhile."""
    start = gateway.log_path.stat().st_size
    yield
    with gateway.log_path.open("rb") as log:
        log.seek(start)
        written = log.read().decode(errors="replace")
    assert "Traceback" not in written and "unhandled error" not in written, written[-4000:]


def raw(http: httpx.Client, body: bytes) -> httpx.Response:
    return http.post(CHAT, content=body, headers={"content-type": "application/json"})


def error_of(response: httpx.Response, param: str | None) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    return dict(error)


def nested(levels: int) -> bytes:
    """A JSON array nested ``levels`` deep."""
    return b"[" * levels + b"]" * levels


def schema(levels: int) -> dict[str, Any]:
    """A valid JSON Schema of objects within objects, ``levels`` of them."""
    inner: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        inner = {"type": "object", "properties": {"a": inner}}
    return inner


@pytest.mark.usefixtures("quiet_log")
def test_deep_unknown_field(http: httpx.Client) -> None:
    body = json.dumps(BASE).encode()[:-1] + b', "extra": ' + nested(1_000) + b"}"
    error = error_of(raw(http, body), None)
    assert error["code"] == "invalid_json"
    assert "nested too deeply" in error["message"]


@pytest.mark.usefixtures("quiet_log")
def test_deep_tool(http: httpx.Client) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    encoded = json.dumps({**BASE, "tools": [tool]}).encode()
    # The same tool with 1,000 levels of arrays in a field of its own.
    body = encoded.replace(
        b'"type": "function"', b'"deep": ' + nested(1_000) + b', "type": "function"'
    )
    assert body != encoded
    error_of(raw(http, body), None)
    body = encoded.replace(
        b'"type": "function"', b'"deep": ' + nested(100) + b', "type": "function"'
    )
    error = error_of(raw(http, body), "tools[0]")
    assert error["code"] == "too_deeply_nested"
    assert "at most 64 levels" in error["message"]


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("invalid", [b'"m\xff"', b'"Hello \xc3("'])
def test_invalid_utf8(http: httpx.Client, invalid: bytes) -> None:
    encoded = json.dumps({**BASE, "user": "me"}).encode()
    body = encoded.replace(b'"me"' if invalid.startswith(b'"m') else b'"Hello"', invalid)
    assert body != encoded
    error = error_of(raw(http, body), None)
    assert error["code"] == "invalid_json"
    assert "not valid UTF-8" in error["message"]


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("levels", [120, 20])
def test_deep_json_schema(client: openai.OpenAI, levels: int) -> None:
    """120 levels is deeper than the body may nest; 20 (41 JSON levels) than a schema may."""
    fmt = {"type": "json_schema", "json_schema": {"name": "deep", "schema": schema(levels)}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            response_format=fmt,  # type: ignore[arg-type]
            max_tokens=2,
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "response_format.json_schema.schema"
    assert "levels" in error["message"]


@pytest.mark.usefixtures("quiet_log")
def test_deep_and_wide_tool_parameters(client: openai.OpenAI) -> None:
    def call(parameters: dict[str, Any]) -> dict[str, Any]:
        tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Hi"}],
                tools=[tool],  # type: ignore[list-item]
                max_tokens=2,
            )
        assert isinstance(caught.value.body, dict)
        return caught.value.body

    deep = call(schema(120))
    assert deep["param"] == "tools[0]"
    assert deep["code"] == "too_deeply_nested"
    deep = call(schema(20))
    assert deep["param"] == "tools[0].function.parameters"
    assert "nests 41 levels deep" in deep["message"]
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(3_000)}}
    huge = call(wide)
    assert huge["param"] == "tools[0].function.parameters"
    assert "at most 2000" in huge["message"]


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("video_fps", 1e308),
        ("video_fps", 61),
        ("seed", 2**63),
        ("seed", -(2**63) - 1),
        ("temperature", 1e308),
        ("top_p", -1e-300),
        ("presence_penalty", -1e308),
        ("frequency_penalty", 2.5),
    ],
)
def test_numbers_out_of_range(client: openai.OpenAI, param: str, value: float) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=2,
            extra_body={param: value},
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param
    assert "Expected" in error["message"] or "out of range" in error["message"]


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("text", ["1e999", "-1e999", "NaN", "Infinity"])
def test_non_finite_numbers(http: httpx.Client, text: str) -> None:
    body = json.dumps({**BASE, "temperature": 0.5}).encode().replace(b"0.5", text.encode())
    error = error_of(raw(http, body), "temperature" if "e999" in text else None)
    assert error["code"] in (None, "invalid_json")


def prompt_tokens(client: openai.OpenAI, messages: list[Any], **extra: Any) -> int:
    completion = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=1, **extra
    )
    assert completion.usage is not None
    return completion.usage.prompt_tokens


TOKENS = ["<image>", "<|im_end|>", "<tool_call>"]


def as_text(messages: list[Any], tools: list[Any] | None = None) -> int:
    """The default model's prompt tokens with every control token in the request as text.

    Transformers' own sanitising (``sanitize_control_tokens``) is the reference; each image
    part is a blank picture (its tokens do not depend on what it shows).
    """
    images = []
    shaped = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            parts = []
            for part in content:
                if part["type"] == "image_url":
                    images.append(Image.new("RGB", (48, 40)))
                    part = {"type": "image"}
                parts.append(part)
            message = {**message, "content": parts}
        shaped.append(message)
    inputs = processor().apply_chat_template(
        shaped,
        tools=tools,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        sanitize_control_tokens=True,
        processor_kwargs={"images": images or None},
    )
    return len(inputs["input_ids"][0])


def as_control(messages: list[Any], tools: list[Any] | None = None) -> int:
    """The prompt tokens of text-only ``messages`` were their control tokens kept as such."""
    text = processor().apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=False
    )
    return len(processor().tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("token", TOKENS)
def test_control_tokens_in_user_text(client: openai.OpenAI, token: str) -> None:
    user = [{"role": "user", "content": f"What is {token} here?"}]
    assert as_text(user) != as_control(user), "the counts tell text from a control token"
    assert prompt_tokens(client, user) == as_text(user)
    # With an image: the image's tokens are the template's only image tokens.
    with_image = [image_message(f"What is {token}?")]
    assert prompt_tokens(client, with_image) == as_text(with_image)


@pytest.mark.usefixtures("quiet_log")
def test_control_tokens_everywhere_else(client: openai.OpenAI) -> None:
    def chat(text: str) -> list[Any]:
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "look", "arguments": json.dumps({"at": text})},
        }
        return [
            {"role": "system", "content": f"Answer {text}."},
            {"role": "user", "content": [{"type": "text", "text": text}]},
            {"role": "assistant", "content": text, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": text},
        ]

    tools = [
        {
            "type": "function",
            "function": {
                "name": "look",
                "description": "Look at <image>",
                "parameters": {"type": "object", "properties": {"at": {"type": "string"}}},
            },
        }
    ]
    for token in TOKENS:
        assert as_text(chat(token), tools) != as_control(chat(token), tools), token
        assert prompt_tokens(client, chat(token), tools=tools) == as_text(chat(token), tools)


@pytest.mark.usefixtures("quiet_log")
@pytest.mark.parametrize("temperature", [5e-324, 4e-69, 1e-7])
def test_tiny_temperature_is_greedy(client: openai.OpenAI, temperature: float) -> None:
    """Logits divided by a tiny temperature overflowed to NaN probabilities in the model."""
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=3,
        temperature=temperature,
        seed=1,
    )
    greedy = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
    )
    assert completion.choices[0].message.content == greedy.choices[0].message.content
