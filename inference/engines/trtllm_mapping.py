"""The contract in TensorRT-LLM's terms, as plain Python: no ``tensorrt_llm`` import here.

``inference/engines/trtllm.py`` turns these dicts into TensorRT-LLM's objects
(``SamplingParams(**sampling_kwargs(...))``, ``GuidedDecodingParams(**guided_kwargs(...))``)
and hands :func:`prompt_input`'s dict to ``LLM.generate_async``. Everything here is
unit-tested on CPU (tests/inference/test_trtllm_mapping.py); what TensorRT-LLM then does with
it has never run (docs/inference.md, "Engines").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from inference.contract import (
    Capabilities,
    FinishReason,
    GenerateRequest,
    Guide,
    PromptCost,
    TextPart,
    VideoMode,
)
from inference.engines.base import RequestError
from inference.guidance import JSON_OPTIONS, tool_call_lark
from inference.sampling import GREEDY_BELOW

ENGINE_NAMES = ("transformers", "trtllm", "auto")

# Model types whose TensorRT-LLM input processor hands videos to the checkpoint's own HF
# processor (tensorrt_llm/_torch/models/modeling_qwen2vl.py: ``processor(videos=...)``). Any
# other multimodal type gets a video's frames as images.
NATIVE_VIDEO_MODEL_TYPES = frozenset({"qwen2_vl", "qwen2_5_vl"})


def resolve_engine(
    name: str, trtllm_imports: Callable[[], bool], gpu_visible: Callable[[], bool]
) -> str:
    """The engine ``name`` stands for: ``auto`` is trtllm when it imports and a GPU is visible."""
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(ENGINE_NAMES)}")
    if name != "auto":
        return name
    return "trtllm" if gpu_visible() and trtllm_imports() else "transformers"


def sampling_kwargs(request: GenerateRequest, max_tokens: int, seed: int) -> dict[str, Any]:
    """``SamplingParams`` keyword arguments for a request (tensorrt_llm/sampling_params.py).

    Stop strings are not passed: the engine's TextStream finds them in the decoded text (as
    the transformers engine does) and aborts the request, so a stop string split across
    tokens is caught the same way on both engines. ``detokenize`` is off for the same reason.
    ``seed`` is always set: TensorRT-LLM's default seed is 0, which would make every unseeded
    request draw the same text; the engine passes a fresh random one for those. Its seed is
    a uint64 (``RandomSeedType`` in tensorrt_llm/executor/types.h): an int64 seed is taken
    modulo 2**64, so every one of its 64 bits counts and a negative one is valid.
    """
    kwargs: dict[str, Any] = {"max_tokens": max_tokens, "n": 1, "detokenize": False}
    if request.temperature < GREEDY_BELOW:
        kwargs["top_k"] = 1  # greedy
    else:
        kwargs["seed"] = seed % 2**64
        kwargs["temperature"] = request.temperature
        if request.top_p < 1.0:
            kwargs["top_p"] = request.top_p
    if request.presence_penalty:
        kwargs["presence_penalty"] = request.presence_penalty
    if request.frequency_penalty:
        kwargs["frequency_penalty"] = request.frequency_penalty
    return kwargs


def guided_lark(
    guide: Guide,
    tools: list[dict[str, Any]] | None,
    parallel: bool,
    open_terminal: str,
    close_terminal: str,
    max_calls: int,
) -> str:
    """The Lark grammar of a guide, the form TensorRT-LLM's llguidance backend compiles.

    Its ``LLGuidanceMatcherFactory`` (tensorrt_llm/_torch/pyexecutor/grammar_matcher.py)
    passes ``GuidedDecodingParams(grammar=...)`` to ``LLMatcher.grammar_from_lark``; JSON goes
    through Lark's ``%json`` too, so the schema carries the same compile options
    (``x-guidance``: no free whitespace) as the transformers engine's grammar.
    """
    if guide.type == "tool_call":
        return tool_call_lark(guide, tools, parallel, open_terminal, close_terminal, max_calls)
    if guide.type == "json_schema":
        if guide.json_schema is None:
            raise RequestError("guide: json_schema needs a schema")
        schema: dict[str, Any] = dict(guide.json_schema)
    else:
        schema = {"type": "object"}
    return f"start: %json {json.dumps({**schema, 'x-guidance': JSON_OPTIONS})}"


def guided_kwargs(lark: str) -> dict[str, Any]:
    """``GuidedDecodingParams`` keyword arguments for a Lark grammar."""
    return {"grammar": lark}


def prompt_input(
    prompt_token_ids: list[int], prompt_text: str, images: list[Any], videos: list[list[Any]]
) -> dict[str, Any]:
    """What ``LLM.generate_async`` takes as its prompt.

    Without media, the token ids the engine counted and sanitised. With media, the rendered
    text and ``multi_modal_data``: TensorRT-LLM's input processor for the checkpoint's model
    type tokenises the text again with the media (tensorrt_llm/llmapi/llm.py decodes token ids
    given with media and re-encodes them, so ids alone cannot carry media).
    """
    if not images and not videos:
        return {"prompt_token_ids": prompt_token_ids}
    data: dict[str, Any] = {}
    if images:
        data["image"] = images
    if videos:
        data["video"] = videos
    return {"prompt": prompt_text, "multi_modal_data": data}


def finish_reason(trtllm_reason: str | None, stopped: bool, has_calls: bool) -> FinishReason:
    """The contract's finish reason from TensorRT-LLM's and the engine's own view.

    TensorRT-LLM reports ``stop`` (an end token), ``length``, ``timeout`` or ``cancelled``
    (tensorrt_llm/executor/result.py ``CompletionOutput.finish_reason``); ``stopped`` is a
    stop string the engine found. As on the transformers engine, only running out of tokens
    is ``length``; calls made make it ``tool_calls``; anything else is ``stop``.
    """
    if trtllm_reason == "length" and not stopped:
        return "length"
    return "tool_calls" if has_calls else "stop"


def capabilities(
    *,
    model: str,
    model_type: str,
    multimodal_model_types: frozenset[str],
    chat_template: str,
    context_length: int,
    prompt_cost: PromptCost | None,
) -> Capabilities:
    """What a checkpoint can do on TensorRT-LLM, from its model type and chat template."""
    vision = model_type in multimodal_model_types
    video: VideoMode = (
        "native"
        if vision and model_type in NATIVE_VIDEO_MODEL_TYPES
        else "frames_as_images"
        if vision
        else "none"
    )
    return Capabilities(
        model=model,
        engine="trtllm",
        vision=vision,
        video=video,
        tools="tools" in chat_template,
        guided_decoding=True,
        context_length=context_length,
        prompt_cost=prompt_cost,
    )


def _texts(request: GenerateRequest) -> Iterator[tuple[str, str]]:
    """Every piece of request text a template renders, with where it is."""
    for m, message in enumerate(request.messages):
        if isinstance(message.content, str):
            yield f"messages[{m}].content", message.content
        elif message.content:
            for p, part in enumerate(message.content):
                if isinstance(part, TextPart):
                    yield f"messages[{m}].content[{p}]", part.text
        for c, call in enumerate(message.tool_calls or []):
            yield f"messages[{m}].tool_calls[{c}]", call.function.arguments
    for t, tool in enumerate(request.tools or []):
        yield f"tools[{t}]", json.dumps(tool)


def control_token_in(request: GenerateRequest, control_tokens: list[str]) -> str | None:
    """A message naming where request text spells one of ``control_tokens``, or None.

    Used for requests with media, whose prompt TensorRT-LLM tokenises from text (see
    :func:`prompt_input`), so a control token in it cannot be kept as plain text.
    """
    tokens = [t for t in control_tokens if t]
    for where, text in _texts(request):
        for token in tokens:
            if token in text:
                return (
                    f"{where}: contains the model's control token {token!r}, which the trtllm "
                    "engine cannot send as plain text alongside images or video"
                )
    return None
