"""Guided decoding and tool calls through Triton: valid output whatever the model would say."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import jsonschema
import pytest
import tritonclient.grpc.aio as aio

from gateway.triton_process import EmbeddedTriton
from inference.contract import GenerateRequest, Guide, ImagePart
from tests.support.media import image_bytes
from tests.support.schemas import DETECTIONS, PARAMETERS, TOOLS
from tests.support.triton_client import stream, user

IMAGE = [image_bytes(5)]
ASK = [user("What is in this image?", ImagePart(0))]


@pytest.fixture(scope="module")
async def client(triton: EmbeddedTriton) -> AsyncIterator[aio.InferenceServerClient]:
    grpc = aio.InferenceServerClient(triton.grpc_url)
    yield grpc
    await grpc.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_json_object_always_parses(client: aio.InferenceServerClient, seed: int) -> None:
    request = GenerateRequest(messages=ASK, max_tokens=2000, seed=seed, guide=Guide(type="json"))
    answer = await stream(client, request, IMAGE)
    assert answer.finish_reason == "stop"
    assert isinstance(json.loads(answer.text), dict)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
async def test_json_schema_output_validates(client: aio.InferenceServerClient, seed: int) -> None:
    guide = Guide(type="json_schema", json_schema=DETECTIONS)
    answer = await stream(
        client, GenerateRequest(messages=ASK, max_tokens=2000, seed=seed, guide=guide), IMAGE
    )
    assert answer.finish_reason == "stop"
    jsonschema.validate(json.loads(answer.text), DETECTIONS)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
async def test_required_tool_call_names_a_tool_with_valid_arguments(
    client: aio.InferenceServerClient, seed: int
) -> None:
    request = GenerateRequest(
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        guide=Guide(type="tool_call"),
        max_tokens=2000,
        seed=seed,
    )
    answer = await stream(client, request, IMAGE)
    assert answer.finish_reason == "tool_calls"
    assert answer.text == "", "a forced call sends no content"
    assert answer.tool_calls
    for call in answer.tool_calls:
        jsonschema.validate(json.loads(call["arguments"]), PARAMETERS[call["name"]])


async def test_named_tool_call_calls_that_tool(client: aio.InferenceServerClient) -> None:
    request = GenerateRequest(
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        guide=Guide(type="tool_call", tool_names=["record_inventory"]),
        parallel_tool_calls=False,
        max_tokens=2000,
        seed=4,
    )
    answer = await stream(client, request, IMAGE)
    assert [call["name"] for call in answer.tool_calls] == ["record_inventory"]
    jsonschema.validate(
        json.loads(answer.tool_calls[0]["arguments"]), PARAMETERS["record_inventory"]
    )


async def test_an_unenforceable_schema_is_an_error_naming_it(
    client: aio.InferenceServerClient,
) -> None:
    guide = Guide(
        type="json_schema",
        json_schema={"type": "object", "properties": {"a": {"type": "nonsense"}}},
    )
    answer = await stream(client, GenerateRequest(messages=ASK, guide=guide), IMAGE)
    assert answer.error is not None and "schema cannot be enforced" in answer.error
    assert "nonsense" in answer.error
