"""What other servers' OpenAI-compatibility suites expect (issue 15), through the `openai` SDK."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.support.chat import MODEL, image_message
from tests.support.processes import GatewayProcess
from tests.support.schemas import TOOLS as PLAIN_TOOLS
from tests.support.schemas import WEATHER

BUDGET = 2000  # tokens: far more than a closed schema needs, so the grammar ends the JSON
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


class Item(BaseModel):
    name: str = Field(max_length=10)
    count: int = Field(ge=1, le=99)


class Room(BaseModel):
    indoor: bool


class Inventory(BaseModel):
    """Nested models: pydantic writes them as ``$defs`` and local ``$ref``."""

    room: Room
    items: list[Item] = Field(max_length=3)


class City(BaseModel):
    name: str = Field(max_length=20)


class Forecast(BaseModel):
    city: City
    days: int = Field(ge=1, le=7)


TOOLS = [openai.pydantic_function_tool(Inventory), openai.pydantic_function_tool(Forecast)]
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
FORCED = ["required", {"type": "function", "function": {"name": "Inventory"}}]
PLAIN_FORCED = ["required", {"type": "function", "function": {"name": "record_inventory"}}]


@pytest.fixture(scope="module")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)


def ask(text: str = "Record what you see.") -> list[Any]:
    return [image_message(text)]


def bad_request(call: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    body = caught.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    return body


def check_parsed(calls: Any, allowed: set[str]) -> None:
    """Every call names an allowed tool, its arguments valid for the schema and the model."""
    assert calls
    for call in calls:
        assert call.function.name in allowed
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
        model = Inventory if call.function.name == "Inventory" else Forecast
        assert isinstance(call.function.parsed_arguments, model)


@pytest.mark.parametrize("tool_choice", FORCED, ids=["required", "named"])
def test_forced_call_of_a_pydantic_tool_with_nested_models(
    client: openai.OpenAI, tool_choice: Any
) -> None:
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=ask(),
        tools=TOOLS,
        tool_choice=tool_choice,
        max_tokens=BUDGET,
        seed=3,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    allowed = {"Inventory"} if isinstance(tool_choice, dict) else set(SCHEMAS)
    check_parsed(choice.message.tool_calls, allowed)


@pytest.mark.parametrize("tool_choice", FORCED, ids=["required", "named"])
def test_streamed_forced_call_of_a_pydantic_tool(client: openai.OpenAI, tool_choice: Any) -> None:
    with client.chat.completions.stream(
        model=MODEL,
        messages=ask(),
        tools=TOOLS,
        tool_choice=tool_choice,
        max_tokens=BUDGET,
        seed=4,
    ) as stream:
        completion = stream.get_final_completion()
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    check_parsed(choice.message.tool_calls, set(SCHEMAS))


def test_a_schema_guided_decoding_cannot_enforce_is_a_400_naming_the_tool(
    client: openai.OpenAI,
) -> None:
    dangling = {
        "type": "function",
        "function": {
            "name": "dangling",
            "parameters": {"type": "object", "properties": {"a": {"$ref": "#/$defs/Nowhere"}}},
        },
    }
    error = bad_request(
        lambda: client.chat.completions.create(
            model=MODEL,
            messages=ask(),
            tools=[WEATHER, dangling],
            tool_choice="required",
            max_tokens=5,
        )
    )
    assert error["param"] == "tools[1].function.parameters"
    assert error["code"] == "invalid_function_parameters"
    assert "Nowhere" in error["message"]
    for internal in ("<[", "%json", "start:", "x-guidance"):
        assert internal not in error["message"]


@pytest.mark.parametrize("tool_choice", PLAIN_FORCED, ids=["required", "named"])
def test_forced_call_cut_off_by_max_tokens_is_length_without_markup(
    client: openai.OpenAI, tool_choice: Any
) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=ask(),
        tools=PLAIN_TOOLS,
        tool_choice=tool_choice,
        max_tokens=6,
        seed=1,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert not choice.message.content, "no markup, no half call, as content"
    assert not choice.message.tool_calls


@pytest.mark.parametrize("tool_choice", PLAIN_FORCED, ids=["required", "named"])
def test_streamed_forced_call_cut_off_by_max_tokens(
    client: openai.OpenAI, tool_choice: Any
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ask(),
            tools=PLAIN_TOOLS,
            tool_choice=tool_choice,
            max_tokens=6,
            seed=1,
            stream=True,
        )
    )
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert "".join(d.content or "" for d in deltas) == ""
    assert not any(d.tool_calls for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize("seed", [INT64_MIN, -1, 0, INT64_MAX])
def test_every_int64_seed_is_taken(client: openai.OpenAI, seed: int) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=ask(), max_tokens=3, seed=seed, temperature=1.0
    )
    assert completion.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("seed", [INT64_MAX + 1, INT64_MIN - 1, 2**64 + 5])
def test_a_seed_beyond_int64_is_a_400_naming_seed(client: openai.OpenAI, seed: int) -> None:
    error = bad_request(
        lambda: client.chat.completions.create(model=MODEL, messages=ask(), seed=seed)
    )
    assert error["param"] == "seed" and "seed" in error["message"]


def test_every_bit_of_the_seed_counts(client: openai.OpenAI) -> None:
    def text(seed: int) -> str:
        completion = client.chat.completions.create(
            model=MODEL, messages=ask("Say anything."), max_tokens=12, seed=seed, temperature=1.0
        )
        return completion.choices[0].message.content or ""

    low = text(5)
    assert text(5) == low, "a seed gives the same text every time"
    assert text(2**32 + 5) != low, "bits above the 32nd count"
    assert text(-(2**62) + 5) != low


@pytest.mark.parametrize(
    "tool_choice", ["auto", "required", {"type": "function", "function": {"name": "Inventory"}}]
)
def test_tool_choice_without_tools_is_a_400(client: openai.OpenAI, tool_choice: Any) -> None:
    error = bad_request(
        lambda: client.chat.completions.create(
            model=MODEL, messages=ask(), tool_choice=tool_choice, max_tokens=2
        )
    )
    assert error["param"] == "tool_choice" and "tools" in error["message"]


def test_tool_choice_none_without_tools_is_fine(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=ask(), tool_choice="none", max_tokens=2
    )
    assert completion.choices[0].finish_reason in ("stop", "length")


def test_groq_timings_of_a_tool_call_count_its_generation(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=ask(),
        tools=PLAIN_TOOLS,
        tool_choice="required",
        max_tokens=BUDGET,
        seed=3,
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    usage: Any = completion.usage
    assert usage.completion_tokens > 20
    # Generating a token takes well over 0.2 ms on any machine; before the model reported its
    # first token, a diverted call's whole generation counted as prompt time.
    assert usage.completion_time > 0.0002 * usage.completion_tokens
    assert usage.prompt_time < usage.completion_time
    assert abs(usage.total_time - (usage.prompt_time + usage.completion_time)) < 1e-5
