"""What every engine must do through the contract, run in-process on each engine.

``transformers`` runs on the embedded default model, everywhere. ``trtllm`` runs where
``tensorrt_llm`` imports and ``VISIONGATE_TEST_TRTLLM_MODEL`` names a multimodal Hugging Face
checkpoint; elsewhere each of its cases is reported as skipped, by name, with the reason
(``-ra``), never counted as passed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest

from inference.contract import (
    Final,
    GenerateRequest,
    Guide,
    ImagePart,
    Message,
    VideoPart,
)
from inference.engines import Engine, Hooks, Media, RequestError
from inference.engines.trtllm import import_error
from inference.media import decode_media
from inference.scenes import Scene
from tests.support.media import image_bytes
from tests.support.scenes import picture, scene
from tests.support.schemas import DETECTIONS, PARAMETERS, TOOLS
from tests.support.triton_client import user

TRTLLM_ERROR = import_error()
TRTLLM_MODEL = os.environ.get("VISIONGATE_TEST_TRTLLM_MODEL", "")
TRTLLM_SKIP = (
    f"tensorrt_llm does not import here: {TRTLLM_ERROR}"
    if TRTLLM_ERROR
    else "VISIONGATE_TEST_TRTLLM_MODEL does not name a multimodal checkpoint"
    if not TRTLLM_MODEL
    else ""
)


@pytest.fixture(scope="module")
def loaded(cache_dir: Path) -> Iterator[dict[str, Engine]]:
    """Each engine, loaded the first time a case needs it."""
    engines: dict[str, Engine] = {}
    yield engines
    trtllm: Any = engines.get("trtllm")
    if trtllm is not None:
        trtllm.llm.shutdown()


@pytest.fixture(params=["transformers", "trtllm"])
def engine(request: pytest.FixtureRequest, loaded: dict[str, Engine]) -> Engine:
    """The engine under test; trtllm's cases are skipped by name where it cannot run."""
    name = request.param
    if name == "trtllm" and TRTLLM_SKIP:
        pytest.skip(f"{request.node.name} not run: {TRTLLM_SKIP}")
    if name not in loaded:
        if name == "transformers":
            from inference.engines.transformers_engine import TransformersEngine

            loaded[name] = TransformersEngine.load("", device="cpu")
        else:
            from inference.engines.trtllm import TrtllmEngine

            loaded[name] = TrtllmEngine.load(TRTLLM_MODEL, device="cuda")
    return loaded[name]


@dataclass
class Run:
    """What one generation sent through its hooks, and what it returned."""

    deltas: list[str] = field(default_factory=list)
    prefills: list[int] = field(default_factory=list)
    deltas_before_prefill: int | None = None
    tokens: int = 0
    final: Final | None = None

    @property
    def text(self) -> str:
        return "".join(self.deltas)


def generate(
    engine: Engine, request: GenerateRequest, media: Media | None = None, cancel_after: int = 0
) -> Run:
    """Run ``request``; with ``cancel_after``, the client leaves after that many deltas."""
    run = Run()

    def prefilled(tokens: int) -> None:
        run.prefills.append(tokens)
        run.deltas_before_prefill = len(run.deltas)

    def on_token() -> None:
        run.tokens += 1

    def cancelled() -> bool:
        return bool(cancel_after) and len(run.deltas) >= cancel_after

    def emit(text: str) -> None:
        if not cancelled():  # as the Triton model does: a departed client gets nothing more
            run.deltas.append(text)

    hooks = Hooks(
        emit=emit,
        cancelled=cancelled,
        on_token=on_token,
        prefilled=prefilled,
    )
    run.final = engine.generate(request, media or Media(), hooks)
    return run


def images(*seeds: int) -> Media:
    return decode_media([image_bytes(seed) for seed in seeds], [], [])


# Pictures from the default model's synthetic world: different in colour and in shape.
RED_CIRCLE, BLUE_SQUARE = scene("red", "circle"), scene("blue", "square", "top left")


def pictures(*scenes: Scene) -> Media:
    return decode_media([picture(s) for s in scenes], [], [])


def greedy(*parts: Any, max_tokens: int = 16, **fields: Any) -> GenerateRequest:
    return GenerateRequest(
        messages=[user(*parts)], max_tokens=max_tokens, temperature=0.0, **fields
    )


def counts(run: Run) -> tuple[int, int]:
    assert run.final is not None
    return run.final.prompt_tokens, run.final.completion_tokens


def test_images_reach_the_model_and_count_in_prompt_tokens(engine: Engine) -> None:
    assert engine.capabilities.vision
    text_only = generate(engine, greedy("Describe the image."))
    one = generate(engine, greedy("Describe the image.", ImagePart(0)), pictures(RED_CIRCLE))
    other = generate(engine, greedy("Describe the image.", ImagePart(0)), pictures(BLUE_SQUARE))
    assert counts(one)[0] > counts(text_only)[0], "an image adds prompt tokens"
    assert counts(one)[0] == counts(other)[0]
    assert one.text != other.text, "the answer depends on the image"


def test_two_images_go_in_in_order(engine: Engine) -> None:
    question = "Which colour comes first?"
    ask = greedy(question, ImagePart(0), ImagePart(1))
    forward = generate(engine, ask, pictures(RED_CIRCLE, BLUE_SQUARE))
    backward = generate(engine, ask, pictures(BLUE_SQUARE, RED_CIRCLE))
    one = generate(engine, greedy(question, ImagePart(0)), pictures(RED_CIRCLE))
    assert counts(forward)[0] == counts(backward)[0] > counts(one)[0]
    assert forward.text != backward.text


def test_video_frames_reach_the_model(engine: Engine) -> None:
    frames = [image_bytes(seed) for seed in range(4)]
    video_media = decode_media([], frames, [4])
    video = generate(engine, greedy("What happens?", VideoPart(0), max_tokens=4), video_media)
    one = generate(engine, greedy("What happens?", ImagePart(0), max_tokens=4), images(0))
    assert counts(video)[0] > counts(one)[0]
    if engine.capabilities.video == "frames_as_images":
        as_images = generate(
            engine,
            greedy("What happens?", *(ImagePart(i) for i in range(4)), max_tokens=4),
            decode_media(frames, [], []),
        )
        assert counts(video)[0] == counts(as_images)[0] and video.text == as_images.text


def test_the_chat_template_renders_tools_unless_tool_choice_is_none(engine: Engine) -> None:
    assert engine.capabilities.tools
    plain = generate(engine, greedy("Weather in Paris?", max_tokens=1))
    with_tools = generate(engine, greedy("Weather in Paris?", max_tokens=1, tools=TOOLS))
    left_out = generate(
        engine, greedy("Weather in Paris?", max_tokens=1, tools=TOOLS, tool_choice="none")
    )
    assert counts(with_tools)[0] > counts(plain)[0] == counts(left_out)[0]


def test_deltas_stream_then_the_final_reports_counts(engine: Engine) -> None:
    run = generate(engine, greedy("Tell me a story.", max_tokens=32))
    assert len(run.deltas) > 1 and all(run.deltas)
    assert run.final is not None and run.final.finish_reason in {"stop", "length"}
    assert run.prefills == [run.final.prompt_tokens] and run.deltas_before_prefill == 0


def test_cancelling_stops_generation(engine: Engine) -> None:
    long = GenerateRequest(messages=[user("Go on.")], max_tokens=3000, seed=1)
    run = generate(engine, long, cancel_after=3)
    assert len(run.deltas) == 3
    # Polled once per token (transformers) or per streamed step (trtllm): it stops at once.
    assert counts(run)[1] < 30


def test_stop_strings_end_generation_without_being_sent(engine: Engine) -> None:
    full = generate(engine, greedy("Tell me a story.", max_tokens=64))
    assert len(full.text) >= 12, full.text
    stop = full.text[10:12]
    cut = generate(engine, greedy("Tell me a story.", max_tokens=64, stop=[stop]))
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.final is not None and cut.final.finish_reason == "stop"
    assert counts(cut)[1] < counts(full)[1]


def test_seeds_are_reproducible(engine: Engine) -> None:
    def ask(seed: int) -> GenerateRequest:
        # A rambling answer: many likely words at each step, so seeds tell apart.
        return GenerateRequest(messages=[user("Tell me a story.")], max_tokens=24, seed=seed)

    first, again, other = (generate(engine, ask(seed)) for seed in (11, 11, 12))
    assert first.text and first.text == again.text
    assert first.text != other.text


def test_penalties_are_applied(engine: Engine) -> None:
    plain = generate(engine, greedy("Say something.", max_tokens=48))
    penalised = generate(
        engine,
        greedy("Say something.", max_tokens=48, frequency_penalty=2.0, presence_penalty=1.0),
    )
    assert penalised.final is not None and plain.text != penalised.text


@pytest.mark.parametrize(
    "guide",
    [Guide(type="json"), Guide(type="json_schema", json_schema=DETECTIONS)],
    ids=["json_object", "json_schema"],
)
def test_guided_json_is_valid(engine: Engine, guide: Guide) -> None:
    request = GenerateRequest(
        messages=[user("Describe the image as JSON.", ImagePart(0))],
        max_tokens=2000,
        seed=0,
        guide=guide,
    )
    run = generate(engine, request, pictures(RED_CIRCLE))
    assert run.final is not None and run.final.finish_reason == "stop"
    value = json.loads(run.text)
    assert isinstance(value, dict)
    if guide.json_schema is not None:
        jsonschema.validate(value, guide.json_schema)


def test_a_forced_tool_call_is_valid(engine: Engine) -> None:
    request = GenerateRequest(
        messages=[user("Weather in Paris?")],
        tools=TOOLS,
        tool_choice="required",
        guide=Guide(type="tool_call"),
        max_tokens=2000,
        seed=0,
    )
    run = generate(engine, request)
    assert run.final is not None and run.final.finish_reason == "tool_calls"
    assert run.text == "" and run.final.tool_calls
    for call in run.final.tool_calls:
        jsonschema.validate(json.loads(call["arguments"]), PARAMETERS[call["name"]])


def test_token_counts_are_exact(engine: Engine) -> None:
    ask = "Tell me a story."  # one that never ends by itself within 5 tokens
    run = generate(engine, greedy(ask, max_tokens=5))
    processor = cast(Any, engine).processor
    expected = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": ask}]}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )["input_ids"][0]
    assert counts(run)[0] == len(expected)
    assert counts(run)[1] == run.tokens == 5
    assert run.final is not None and run.final.finish_reason == "length"


@pytest.mark.parametrize(
    ("request_", "media", "expected"),
    [
        (GenerateRequest(messages=[]), Media(), "at least one message"),
        (greedy("x", ImagePart(3)), images(1), "image index 3"),
        (greedy("x", VideoPart(0)), Media(), "video index 0"),
        (
            greedy("x", guide=Guide(type="json_schema", json_schema={"type": "nonsense"})),
            Media(),
            "schema cannot be enforced",
        ),
        (greedy("x", guide=Guide(type="tool_call")), Media(), "a tool call needs tools"),
    ],
    ids=["no-messages", "bad-image-index", "bad-video-index", "bad-schema", "call-no-tools"],
)
def test_bad_input_is_a_request_error_naming_it(
    engine: Engine, request_: GenerateRequest, media: Media, expected: str
) -> None:
    with pytest.raises(RequestError, match=expected):
        generate(engine, request_, media)
    assert counts(generate(engine, greedy("Hello", max_tokens=2)))[1] > 0, "the engine survives"


def test_an_over_long_prompt_is_a_request_error(engine: Engine) -> None:
    context = engine.capabilities.context_length
    assert context > 0
    history = [Message("user", "word " * context)]
    with pytest.raises(RequestError, match="the context holds"):
        generate(engine, GenerateRequest(messages=history, max_tokens=4))
