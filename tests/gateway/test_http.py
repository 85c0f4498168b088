"""Raw HTTP, as the vendors' curl examples send it: shapes, parameters, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.chat import MODEL, image_message
from tests.support.media import image_data_uri
from tests.support.processes import GatewayProcess

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=60) as client:
        yield client


def chat(http: httpx.Client, path: str = CHAT, **body: Any) -> httpx.Response:
    body.setdefault("model", MODEL)
    body.setdefault("messages", [{"role": "user", "content": "Hello"}])
    body.setdefault("max_tokens", 4)
    return http.post(path, json=body)


def events(response: httpx.Response) -> list[Any]:
    """The SSE `data:` payloads, JSON-decoded, with "[DONE]" kept as a string."""
    lines = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def assert_error(response: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"]
    if param is not None:
        assert error["param"] == param
    return dict(error)


@pytest.mark.parametrize("path", [CHAT, "/openai" + CHAT])
def test_text_chat(http: httpx.Client, path: str) -> None:
    response = chat(http, path)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == MODEL
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 4
    for timing in ("queue_time", "prompt_time", "completion_time"):
        assert usage[timing] >= 0
    # Time passed between submitting to Triton and its last output, and the parts add up.
    assert usage["total_time"] > 0
    assert abs(usage["total_time"] - (usage["prompt_time"] + usage["completion_time"])) < 1e-5
    assert body["x_groq"]["id"].startswith("req_")


def test_base64_image_counts_as_prompt_tokens(http: httpx.Client) -> None:
    plain = chat(http, messages=[{"role": "user", "content": "What's in this image?"}]).json()
    with_image = chat(http, messages=[image_message("What's in this image?")]).json()
    assert with_image["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]


def test_multi_turn_with_image_in_first_turn(http: httpx.Client) -> None:
    response = chat(
        http,
        messages=[
            image_message("What is in this image?"),
            {"role": "assistant", "content": "A hill."},
            {"role": "user", "content": "Tell me more about the area."},
        ],
    )
    assert response.status_code == 200, response.text


def test_stream_with_include_usage(http: httpx.Client) -> None:
    response = chat(http, stream=True, stream_options={"include_usage": True}, max_tokens=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = events(response)
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["x_groq"]["id"].startswith("req_")
    finish, usage_chunk = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] in ("stop", "length")
    assert (
        finish["x_groq"]["usage"]["completion_tokens"] == usage_chunk["usage"]["completion_tokens"]
    )
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] <= 5
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)


def test_stream_without_usage_has_no_usage_field(http: httpx.Client) -> None:
    data = events(chat(http, stream=True))
    assert data[-1] == "[DONE]"
    assert all("usage" not in chunk for chunk in data[:-1])


def test_seed_determinism(http: httpx.Client) -> None:
    def text(seed: int, stream: bool = False) -> str:
        response = chat(http, seed=seed, temperature=1.0, max_tokens=12, stream=stream)
        if stream:
            return "".join(
                c["choices"][0]["delta"].get("content") or ""
                for c in events(response)[:-1]
                if c["choices"]
            )
        return str(response.json()["choices"][0]["message"]["content"])

    first = text(7)
    assert text(7) == first
    assert text(7, stream=True) == first
    assert text(8) != first


def test_stop_string_ends_the_answer_before_it(http: httpx.Client) -> None:
    free = chat(http, seed=11, max_tokens=16).json()["choices"][0]["message"]["content"]
    candidates = [c for c in free[1:] if c not in "\ufffd"]
    assert candidates, f"no usable character in {free!r}"
    stop = candidates[0]
    for form in (stop, [stop, "never-generated"]):
        body = chat(http, seed=11, max_tokens=16, stop=form).json()
        assert body["choices"][0]["message"]["content"] == free[: free.index(stop)]
        assert body["choices"][0]["finish_reason"] == "stop"


def test_models_endpoints(http: httpx.Client) -> None:
    for prefix in ("", "/openai"):
        listing = http.get(prefix + "/v1/models").json()
        assert listing["object"] == "list"
        [model] = listing["data"]
        assert model["id"] == MODEL and model["object"] == "model"
        assert model["capabilities"]["vision"] is True
        one = http.get(f"{prefix}/v1/models/{MODEL}")
        assert one.status_code == 200 and one.json()["id"] == MODEL
    assert assert_error(http.get("/v1/models/nope"), 404)["code"] == "model_not_found"


def test_health(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json()["status"] == "ready"


def test_malformed_json(http: httpx.Client) -> None:
    response = http.post(CHAT, content=b'{"model": ', headers={"content-type": "application/json"})
    assert_error(response, 400)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": "five"}, "max_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": []}, "messages"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_wrong_types_name_the_param(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    error = assert_error(chat(http, **body), 400, param)
    assert error["type"] == "invalid_request_error"


def test_missing_model(http: httpx.Client) -> None:
    response = http.post(CHAT, json={"messages": [{"role": "user", "content": "hi"}]})
    assert_error(response, 400, "model")


def test_unknown_model(http: httpx.Client) -> None:
    error = assert_error(chat(http, model="gpt-9"), 404, "model")
    assert error["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 9}, "n"),  # above VISIONGATE_MAX_N
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ],
)
def test_unsupported_parameters_are_refused(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    assert_error(chat(http, **body), 400, param)


def test_n_1_is_fine(http: httpx.Client) -> None:
    assert chat(http, n=1).status_code == 200


def test_bad_image(http: httpx.Client) -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}
    response = chat(http, messages=[{"role": "user", "content": [part]}])
    assert_error(response, 400, "messages[0].content[0].image_url.url")


def test_image_the_model_cannot_decode(http: httpx.Client) -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}
    assert_error(chat(http, messages=[{"role": "user", "content": [part]}]), 400)


def test_too_many_images(http: httpx.Client) -> None:
    parts = [{"type": "image_url", "image_url": {"url": image_data_uri(i)}} for i in range(6)]
    response = chat(http, messages=[{"role": "user", "content": parts}])
    assert_error(response, 400, "messages[0].content[5].image_url.url")


def test_framework_errors_are_openai_shaped(http: httpx.Client) -> None:
    assert_error(http.get("/v1/nothing-here"), 404)
    assert_error(http.get(CHAT), 405)
    assert_error(http.delete("/v1/models"), 405)


def test_oversized_body(http: httpx.Client) -> None:
    big = b'{"model": "' + b"x" * (33 * 1024 * 1024) + b'"}'
    response = http.post(CHAT, content=big, headers={"content-type": "application/json"})
    assert_error(response, 413)
