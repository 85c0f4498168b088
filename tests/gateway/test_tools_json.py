"""Tool use and JSON mode with images, through the real SDKs: valid whatever the model says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import groq
import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from gateway.triton_process import EmbeddedTriton
from tests.support.chat import MODEL, image_message
from tests.support.media import image_data_uri
from tests.support.processes import GatewayProcess, start_gateway
from tests.support.schemas import CAPTION, DETECTIONS, PARAMETERS, TOOLS, WEATHER

BUDGET = 2000  # tokens: far more than a closed schema needs, so the grammar ends the JSON


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)


def check_calls(completion: Any, allowed: set[str]) -> None:
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls
    ids = [call.id for call in choice.message.tool_calls]
    assert len(set(ids)) == len(ids) and all(i.startswith("call_") for i in ids)
    for call in choice.message.tool_calls:
        assert call.type == "function" and call.function.name in allowed
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_required_tool_call_about_an_image(client: openai.OpenAI, seed: int) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[image_message("What should I record here?", seed)],
        tools=TOOLS,
        tool_choice="required",
        max_tokens=BUDGET,
        seed=seed,
    )
    check_calls(completion, set(PARAMETERS))
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_named_tool_call_calls_only_that_function(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[image_message("Whats the weather like in this state?")],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "record_inventory"}},
        parallel_tool_calls=False,
        max_tokens=BUDGET,
        seed=3,
    )
    check_calls(completion, {"record_inventory"})
    assert len(completion.choices[0].message.tool_calls or []) == 1


def test_json_object_content_parses_and_guided_tokens_are_counted(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[image_message("Describe this image as JSON.")],
        response_format={"type": "json_object"},
        max_tokens=BUDGET,
        seed=1,
        logprobs=True,
    )
    content = completion.choices[0].message.content or ""
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(content), dict)
    # Every guided token is billed: each token of the content (one logprob each) and the end.
    logprobs = completion.choices[0].logprobs
    assert completion.usage is not None and logprobs is not None and logprobs.content
    assert b"".join(bytes(t.bytes or []) for t in logprobs.content) == content.encode()
    assert completion.usage.completion_tokens == len(logprobs.content) + 1


@pytest.mark.parametrize(
    ("schema", "seed"), [(DETECTIONS, 0), (DETECTIONS, 4), (CAPTION, 1), (CAPTION, 2)]
)
def test_json_schema_content_validates(
    client: openai.OpenAI, schema: dict[str, Any], seed: int
) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[image_message("What is in this image?", seed)],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        },
        max_tokens=BUDGET,
        seed=seed,
    )
    assert completion.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), schema)


def test_streamed_tool_calls_are_assembled_by_the_sdk(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL,
        messages=[image_message("Record what you see.")],
        tools=TOOLS,
        tool_choice="required",
        max_tokens=BUDGET,
        seed=5,
    ) as stream:
        chunks = [event.chunk for event in stream if event.type == "chunk"]
        final = stream.get_final_completion()
    check_calls(final, set(PARAMETERS))
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    first = deltas[0]
    assert first.id and first.type == "function" and first.function and first.function.name
    fragments = [d for d in deltas if d.index == first.index][1:]
    assert len(fragments) > 1 and all(d.id is None and d.function.name is None for d in fragments)


def test_multi_turn_with_a_tool_call_and_its_result(client: openai.OpenAI) -> None:
    history = [
        image_message("Whats the weather like in this state?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_q0wg",
                    "type": "function",
                    "function": {
                        "name": "get_current_weather",
                        "arguments": '{"location": "New York, NY"}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_q0wg",
            "content": '{"temperature": 21, "unit": "celsius"}',
        },
    ]
    completion = client.chat.completions.create(
        model=MODEL, messages=history, tools=TOOLS, max_tokens=8, seed=1
    )
    short = client.chat.completions.create(
        model=MODEL, messages=history[:1], tools=TOOLS, max_tokens=8, seed=1
    )
    assert completion.choices[0].finish_reason in {"stop", "length", "tool_calls"}
    assert completion.usage is not None and short.usage is not None
    # The call and its result are part of the prompt the model saw.
    assert completion.usage.prompt_tokens > short.usage.prompt_tokens + 20


class Detection(BaseModel):
    label: str = Field(max_length=12)
    count: int = Field(ge=0, le=9)
    kind: Literal["animal", "thing", "person"]


class Scene(BaseModel):
    detections: list[Detection] = Field(max_length=3)
    indoor: bool


def test_sdk_structured_output_helper_parses_into_pydantic(client: openai.OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[image_message("List what you see.")],
        response_format=Scene,
        max_tokens=BUDGET,
        seed=2,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Scene)
    assert all(isinstance(d, Detection) for d in parsed.detections)


def test_groq_guide_tool_use_example(gateway: GatewayProcess) -> None:
    # Groq's "Tool Use with Images" example, with the image inlined (no internet here).
    client = groq.Groq(base_url=gateway.url, api_key=gateway.api_key, max_retries=0)
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Whats the weather like in this state?"},
                {"type": "image_url", "image_url": {"url": image_data_uri(7)}},
            ],
        }
    ]
    auto = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], tool_choice="auto", max_tokens=16
    )
    assert auto.choices[0].finish_reason in {"stop", "length", "tool_calls"}
    forced = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=BUDGET,
        seed=1,
    )
    calls = forced.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_current_weather"
    jsonschema.validate(json.loads(calls[0].function.arguments), PARAMETERS["get_current_weather"])


@pytest.fixture(scope="module")
def plain_model_gateway(
    triton: EmbeddedTriton, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway that also serves the model under an id configured without tools or JSON mode."""
    models = [
        {"id": MODEL},
        {"id": "visiongate/plain", "triton_model": "vlm", "tools": False, "json_mode": False},
    ]
    log = tmp_path_factory.mktemp("plain-gateway") / "gateway.log"
    process = start_gateway(
        triton.http_url, log, api_key, env={"VISIONGATE_MODELS": json.dumps(models)}
    )
    try:
        yield process
    finally:
        process.stop()


def refused(gateway: GatewayProcess, **body: Any) -> dict[str, Any]:
    body = {"model": MODEL, "messages": [image_message()], "max_tokens": 4, **body}
    response = httpx.post(
        gateway.url + "/v1/chat/completions", json=body, headers=gateway.headers, timeout=30
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


def test_invalid_tools_and_formats_are_400s_naming_the_parameter(
    gateway: GatewayProcess, plain_model_gateway: GatewayProcess
) -> None:
    bad_schema = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"a": {"type": 5}}},
        },
    }
    assert refused(gateway, tools=[bad_schema])["param"] == "tools[0].function.parameters"
    bad_name = {"type": "function", "function": {"name": "no spaces allowed"}}
    assert refused(gateway, tools=[bad_name])["param"] == "tools[0].function.name"
    assert refused(gateway, tools=[WEATHER, WEATHER])["param"] == "tools[1].function.name"

    unknown = refused(
        gateway, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}
    )
    assert unknown["param"] == "tool_choice" and "nope" in unknown["message"]
    assert refused(gateway, tool_choice="required")["param"] == "tool_choice"
    assert refused(gateway, tools=[WEATHER], tool_choice="sometimes")["param"] == "tool_choice"

    bad_format = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "required": "a"}},
    }
    assert (
        refused(gateway, response_format=bad_format)["param"]
        == "response_format.json_schema.schema"
    )
    # Valid JSON Schema the model cannot enforce: refused, naming the keyword, never ignored.
    unenforceable = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": unenforceable}}
    assert "uniqueItems" in refused(gateway, response_format=fmt)["message"]
    odd_dialect = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$schema": 5}}}
    assert (
        refused(gateway, response_format=odd_dialect)["param"]
        == "response_format.json_schema.schema"
    )
    no_schema = {"type": "json_schema", "json_schema": {"name": "x"}}
    assert (
        refused(gateway, response_format=no_schema)["param"] == "response_format.json_schema.schema"
    )

    no_tools = refused(plain_model_gateway, model="visiongate/plain", tools=[WEATHER])
    assert no_tools["param"] == "tools" and no_tools["code"] == "tools_not_supported"
    no_json = refused(
        plain_model_gateway, model="visiongate/plain", response_format={"type": "json_object"}
    )
    assert no_json["param"] == "response_format" and no_json["code"] == "json_mode_not_supported"
