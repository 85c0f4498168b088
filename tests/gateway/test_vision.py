"""The default model sees: what it answers about a picture proves the picture reached it.

Through the `openai` SDK, `visiongate serve` and the real Triton: a scene's colour and shape
come back right from every media source; with two and with five images (asked which one is
red, and which colour comes first and last), and with a video's frames, the answer follows
their order; JSON and forced tool calls validate and carry the scene's values. Every call
is greedy (temperature 0), so the answers are repeatable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from gateway.triton_process import EmbeddedTriton
from inference.scenes import ORDINALS, picture_list
from tests.support.chat import MODEL, image, video_url
from tests.support.media import MediaServer, data_uri, media_server
from tests.support.processes import start_gateway
from tests.support.scenes import colour_video, picture, picture_uri, scene

RED_CIRCLE = scene("red", "circle", "top left")
BLUE_TRIANGLE = scene("blue", "triangle", "bottom right", seed=1)
GREEN_SQUARES = scene("green", "square", count=3, seed=2)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inside = tmp_path_factory.mktemp("vision-media")
    (inside / "blue-triangle.png").write_bytes(picture(BLUE_TRIANGLE))
    (inside / "colours.mp4").write_bytes(colour_video(["yellow", "purple", "cyan"]))
    return inside


@pytest.fixture(scope="module")
def server() -> Iterator[MediaServer]:
    with media_server() as served:
        served.files["/red-circle.jpg"] = picture(RED_CIRCLE, fmt="JPEG")
        served.files["/colours.mp4"] = colour_video(["orange", "green", "pink"])
        yield served


@pytest.fixture(scope="module")
def client(
    triton: EmbeddedTriton,
    api_key: str,
    root: Path,
    server: MediaServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[openai.OpenAI]:
    env = {
        "VISIONGATE_MEDIA_ALLOWED_PRIVATE_HOSTS": '["127.0.0.1"]',
        "VISIONGATE_ALLOWED_MEDIA_ROOTS": json.dumps([str(root)]),
    }
    log_path = tmp_path_factory.mktemp("vision-gateway") / "gateway.log"
    with start_gateway(triton.http_url, log_path, api_key, env=env) as process:
        yield openai.OpenAI(base_url=process.url + "/v1", api_key=process.api_key, max_retries=0)


def say(client: openai.OpenAI, question: str, *media: dict[str, Any], **extra: Any) -> Any:
    """The greedy answer to ``question`` about ``media``."""
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [{"type": "text", "text": question}, *media]}],  # type: ignore[misc,list-item]
        temperature=0,
        max_tokens=64,
        **extra,
    )


def text(completion: Any) -> str:
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice
    return str(choice.message.content)


def test_a_pictures_colour_and_shape_from_every_source(
    client: openai.OpenAI, server: MediaServer, root: Path
) -> None:
    sources = {
        "data": (picture_uri(GREEN_SQUARES), "green", "Three squares."),
        "http": (server.url + "/red-circle.jpg", "red", "A circle."),
        "file": (f"file://{root}/blue-triangle.png", "blue", "A triangle."),
    }
    for name, (url, colour, shape) in sources.items():
        assert text(say(client, "What colour is it?", image(url))) == f"{colour.title()}.", name
        assert text(say(client, "What shape is this?", image(url))) == shape, name
    described = text(say(client, "Describe the image.", image(sources["file"][0])))
    assert described.startswith("A blue triangle")
    orange = picture_uri(scene("orange", "circle", "top right", seed=3))
    assert text(say(client, "Describe the image.", image(orange))).startswith("An orange circle")


def test_where_and_how_many(client: openai.OpenAI) -> None:
    assert text(say(client, "Where is the shape?", image(picture_uri(RED_CIRCLE)))) == "Top left."
    count = say(client, "How many shapes are there?", image(picture_uri(GREEN_SQUARES)))
    assert text(count) == "Three."


def test_a_large_picture_resized_by_the_processor_is_still_recognised(
    client: openai.OpenAI,
) -> None:
    big = data_uri(picture(BLUE_TRIANGLE, size=1024), "image/png")
    assert text(say(client, "What colour is it?", image(big))) == "Blue."
    assert text(say(client, "What shape is this?", image(big))) == "A triangle."


def test_two_images_keep_their_order(client: openai.OpenAI) -> None:
    red, blue = picture_uri(RED_CIRCLE), picture_uri(BLUE_TRIANGLE)
    question = "Which image is red, the first or the second?"
    first = text(say(client, question, image(red), image(blue)))
    assert first == "Picture 1: red, so the first."
    second = text(say(client, question, image(blue), image(red)))
    assert second == "Picture 1: blue, Picture 2: red, so the second."


def test_five_images_keep_their_order(client: openai.OpenAI) -> None:
    colours = ["orange", "cyan", "purple", "yellow", "pink"]
    images = [image(picture_uri(scene(c, "circle", seed=i))) for i, c in enumerate(colours)]
    for i, colour in enumerate(colours):
        answer = text(say(client, f"Which image is {colour}?", *images))
        assert answer == f"{picture_list(colours[: i + 1])}, so the {ORDINALS[i]}.", colour


def test_one_of_five_images_by_its_number_or_place(client: openai.OpenAI) -> None:
    """Its colour, asked by number or by place (asked its shape, it is right only about 4
    times in 5: docs/inference.md)."""
    colours = ["green", "pink", "blue", "red", "yellow"]
    images = [image(picture_uri(scene(c, "square", seed=i))) for i, c in enumerate(colours)]
    for i, colour in enumerate(colours):
        for which in (f"picture {i + 1}", f"the {ORDINALS[i]} image"):
            answer = text(say(client, f"What colour is {which}?", *images))
            assert answer == f"Picture {i + 1}: {colour}.", which


@pytest.mark.parametrize(
    "colours", [["red", "blue"], ["blue", "red"], ["orange", "cyan", "purple", "yellow", "pink"]]
)
def test_several_images_keep_their_order(client: openai.OpenAI, colours: list[str]) -> None:
    images = [image(picture_uri(scene(c, "circle", seed=i))) for i, c in enumerate(colours)]
    assert text(say(client, "Which colour comes first?", *images)) == f"{colours[0].title()}."
    assert text(say(client, "Which colour comes last?", *images)) == f"{colours[-1].title()}."


def test_a_videos_frames_arrive_in_order(
    client: openai.OpenAI, server: MediaServer, root: Path
) -> None:
    sources = {
        "data": (data_uri(colour_video(["red", "blue", "green"]), "video/mp4"), "Red.", "Green."),
        "http": (server.url + "/colours.mp4", "Orange.", "Pink."),
        "file": (f"file://{root}/colours.mp4", "Yellow.", "Cyan."),
    }
    for name, (url, first, last) in sources.items():
        assert text(say(client, "Which colour comes first?", video_url(url))) == first, name
        assert text(say(client, "Which colour comes last?", video_url(url))) == last, name


SCENE_SCHEMA = {
    "type": "object",
    "properties": {
        "shape": {"type": "string", "enum": ["circle", "square", "triangle"]},
        "color": {"type": "string"},
        "count": {"type": "integer"},
    },
    "required": ["shape", "color", "count"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_answers_are_valid_and_right(client: openai.OpenAI, stream: bool) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "scene", "schema": SCENE_SCHEMA},
    }
    for picture_, expected in (
        (GREEN_SQUARES, {"shape": "square", "color": "green", "count": 3}),
        (BLUE_TRIANGLE, {"shape": "triangle", "color": "blue", "count": 1}),
    ):
        answer = say(
            client,
            "Describe the image as JSON.",
            image(picture_uri(picture_)),
            response_format=response_format,
            stream=stream,
        )
        content = (
            "".join(c.choices[0].delta.content or "" for c in answer) if stream else text(answer)
        )
        value = json.loads(content)
        jsonschema.validate(value, SCENE_SCHEMA)
        assert value == expected


def test_json_mode_finishes_well_inside_the_budget(client: openai.OpenAI) -> None:
    answer = say(
        client,
        "Describe the image as JSON.",
        image(picture_uri(RED_CIRCLE)),
        response_format={"type": "json_object"},
    )
    value = json.loads(text(answer))
    # json_object leaves the keys to the model: the facts it names must be the scene's.
    facts = RED_CIRCLE.facts()
    assert value and {k: facts["color" if k == "colour" else k] for k in value} == value
    assert answer.usage.completion_tokens < 64


RECORD = {
    "type": "function",
    "function": {
        "name": "record_shape",
        "description": "Record a shape.",
        "parameters": {
            "type": "object",
            "properties": {
                "shape": {"type": "string"},
                "color": {"type": "string"},
                "count": {"type": "integer"},
            },
            "required": ["shape", "color", "count"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
NOTE = {
    "type": "function",
    "function": {
        "name": "note_image",
        "parameters": {
            "type": "object",
            "properties": {"position": {"type": "string"}},
            "required": ["position"],
            "additionalProperties": False,
        },
    },
}


def streamed_call(answer: Any) -> tuple[str, str, str | None]:
    """The name, arguments and finish reason of one streamed tool call."""
    name, arguments, finish = "", "", None
    for chunk in answer:
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or []:
            name += call.function.name or ""
            arguments += call.function.arguments or ""
        finish = choice.finish_reason or finish
    return name, arguments, finish


@pytest.mark.parametrize("stream", [False, True])
def test_forced_tool_calls_are_valid_and_right(client: openai.OpenAI, stream: bool) -> None:
    squares = image(picture_uri(GREEN_SQUARES))
    required = say(
        client,
        "Record what you see.",
        squares,
        tools=[RECORD],
        tool_choice="required",
        stream=stream,
    )
    named = say(
        client,
        "Call note_image.",
        image(picture_uri(RED_CIRCLE)),
        tools=[RECORD, NOTE],
        tool_choice={"type": "function", "function": {"name": "note_image"}},
        stream=stream,
    )
    calls = []
    for answer in (required, named):
        if stream:
            calls.append(streamed_call(answer))
        else:
            choice = answer.choices[0]
            call = choice.message.tool_calls[0].function
            calls.append((call.name, call.arguments, choice.finish_reason))
    (name, arguments, finish), (named_name, named_arguments, named_finish) = calls
    assert finish == "tool_calls" and named_finish == "tool_calls"
    assert name == "record_shape"
    assert json.loads(arguments) == {"shape": "square", "color": "green", "count": 3}
    assert named_name == "note_image"
    assert json.loads(named_arguments) == {"position": "top left"}
