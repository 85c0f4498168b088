"""The Responses API (stateless subset) through the real ``openai`` SDK and the real stack."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from tests.support.chat import MODEL
from tests.support.media import image_data_uri
from tests.support.processes import GatewayProcess
from tests.support.schemas import CAPTION, PARAMETERS, WEATHER

BUDGET = 2000  # tokens: far more than a closed schema needs, so the grammar ends the JSON
# WEATHER in the Responses API's flat shape.
WEATHER_TOOL = {"type": "function", **WEATHER["function"]}


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)


def image_input(text: str = "What's in this image?") -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": text},
                {"type": "input_image", "image_url": image_data_uri(0)},
            ],
        }
    ]


def test_create_with_text(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL, input="Say hi", instructions="Be brief.", max_output_tokens=8, temperature=0
    )
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status in ("completed", "incomplete")
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.output_text == message.content[0].text
    assert response.usage is not None
    assert 0 < response.usage.output_tokens <= 8
    usage = response.usage
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_create_with_an_image_counts_its_tokens(client: openai.OpenAI) -> None:
    plain = client.responses.create(model=MODEL, input="What's in this image?", max_output_tokens=1)
    with_image = client.responses.create(model=MODEL, input=image_input(), max_output_tokens=1)
    assert plain.usage is not None and with_image.usage is not None
    assert with_image.usage.input_tokens > plain.usage.input_tokens


def test_json_schema_format_is_valid_json(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=image_input("Caption this image."),
        text={"format": {"type": "json_schema", "name": "caption", "schema": CAPTION}},
        temperature=0,  # repeatable: at temperature 1 the JSON may not close within the budget
        max_output_tokens=BUDGET,
    )
    assert response.status == "completed"
    jsonschema.validate(json.loads(response.output_text), CAPTION)


def test_required_function_tool_gives_a_function_call(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=MODEL,
        input=image_input("What's the weather like in this state?"),
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        temperature=0,  # repeatable: at temperature 1 a call may not close within the budget
        max_output_tokens=BUDGET,
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert calls and all(call.name == "get_current_weather" for call in calls), (
        response.status,
        response.incomplete_details,
        [o.model_dump() for o in response.output],
    )
    for call in calls:
        assert call.call_id.startswith("call_")
        jsonschema.validate(json.loads(call.arguments), PARAMETERS["get_current_weather"])


def test_stream_events_join_to_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model=MODEL, input=image_input(), max_output_tokens=16, temperature=0
    ) as stream:
        events = list(stream)
        final = stream.get_final_response() if events[-1].type == "response.completed" else None
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [event.sequence_number for event in events] == list(range(len(events)))
    last = events[-1].response  # type: ignore[union-attr]
    assert last.usage is not None and last.usage.total_tokens > 0
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    (done,) = [e for e in events if e.type == "response.output_text.done"]
    assert done.text == deltas == last.output_text
    assert final is None or final.output_text == deltas


def test_stream_with_a_tool_completes(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model=MODEL,
        input=image_input("What's the weather like in this state?"),
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_current_weather"},
        parallel_tool_calls=False,  # exactly one call
        temperature=0,
        max_output_tokens=BUDGET,
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[-1] == "response.completed" and "response.function_call_arguments.done" in kinds
    (call,) = [item for item in final.output if item.type == "function_call"]
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    assert arguments == call.arguments
    jsonschema.validate(json.loads(arguments), PARAMETERS["get_current_weather"])
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"conversation": "conv_123"}, "conversation"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ],
)
def test_stateful_parameters_are_refused_by_name(
    client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="Hi", max_output_tokens=1, **extra)
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param
    assert error["type"] == "invalid_request_error" and error["message"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 5}}}},
            "text.format.schema",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"tools": [{"type": "function", "name": "bad name!"}]}, "tools[0].name"),
    ],
)
def test_chat_errors_name_the_responses_parameter(
    client: openai.OpenAI, extra: dict[str, Any], param: str
) -> None:
    arguments: dict[str, Any] = {"model": MODEL, "input": "Hi", "max_output_tokens": 1} | extra
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**arguments)
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    for chat_name in ("response_format", "messages[", ".function", "image_url.url"):
        assert chat_name not in error["message"], error
