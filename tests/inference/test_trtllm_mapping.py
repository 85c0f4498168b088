"""The contract mapped to TensorRT-LLM's objects, checked on CPU without ``tensorrt_llm``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llguidance import LLMatcher

from inference import tiny_vlm
from inference.contract import (
    GenerateRequest,
    Guide,
    Message,
    PromptCost,
    TextPart,
    ToolCall,
    ToolCallFunction,
)
from inference.engines import RequestError, resolve
from inference.engines.trtllm import import_error
from inference.engines.trtllm_mapping import (
    capabilities,
    control_token_in,
    finish_reason,
    guided_kwargs,
    guided_lark,
    prompt_input,
    resolve_engine,
    sampling_kwargs,
)
from inference.guidance import Guidance
from inference.tool_parsers import tool_call_format
from tests.support.schemas import DETECTIONS, TOOLS

# SamplingParams' fields in tensorrt_llm/sampling_params.py (the ones this mapping may set).
SAMPLING_FIELDS = {
    "max_tokens",
    "n",
    "detokenize",
    "top_k",
    "top_p",
    "seed",
    "temperature",
    "presence_penalty",
    "frequency_penalty",
}


def ask(**fields: Any) -> GenerateRequest:
    return GenerateRequest(messages=[Message("user", "Hi")], **fields)


@pytest.mark.parametrize(
    ("name", "imports", "gpu", "expected"),
    [
        ("auto", True, True, "trtllm"),
        ("auto", True, False, "transformers"),
        ("auto", False, True, "transformers"),
        ("auto", False, False, "transformers"),
        ("trtllm", False, False, "trtllm"),
        ("transformers", True, True, "transformers"),
    ],
)
def test_auto_is_trtllm_only_when_it_imports_and_a_gpu_is_visible(
    name: str, imports: bool, gpu: bool, expected: str
) -> None:
    assert resolve_engine(name, lambda: imports, lambda: gpu) == expected


def test_an_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known engines: transformers, trtllm, auto"):
        resolve_engine("vllm", lambda: True, lambda: True)


def test_auto_resolves_to_transformers_on_this_machine() -> None:
    reason = import_error()
    assert reason is not None, "tensorrt_llm imports here: this test is for machines without it"
    assert "tensorrt_llm" in reason
    assert resolve("auto") == "transformers"


def test_greedy_sampling_is_top_k_one_without_a_seed() -> None:
    kwargs = sampling_kwargs(ask(temperature=0.0, seed=5), max_tokens=9, seed=5)
    assert kwargs == {"max_tokens": 9, "n": 1, "detokenize": False, "top_k": 1}


def test_sampling_carries_seed_temperature_top_p_and_penalties() -> None:
    request = ask(temperature=0.7, top_p=0.9, presence_penalty=0.5, frequency_penalty=-0.25)
    kwargs = sampling_kwargs(request, max_tokens=100, seed=42)
    assert kwargs == {
        "max_tokens": 100,
        "n": 1,
        "detokenize": False,
        "seed": 42,
        "temperature": 0.7,
        "top_p": 0.9,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.25,
    }
    assert set(kwargs) <= SAMPLING_FIELDS


def test_stop_strings_stay_with_the_engine_not_tensorrt_llm() -> None:
    kwargs = sampling_kwargs(ask(stop=["\n\n"], top_p=1.0), max_tokens=5, seed=1)
    assert "stop" not in kwargs and "top_p" not in kwargs
    assert set(kwargs) <= SAMPLING_FIELDS


@pytest.fixture(scope="module")
def guidance() -> Guidance:
    tokenizer = tiny_vlm.load_tokenizer()
    return Guidance(
        tokenizer, len(tokenizer), [tokenizer.eos_token_id], tool_call_format("hermes"), 4
    )


def accepts(guidance: Guidance, lark: str, text: str) -> bool:
    """Whether the grammar, compiled as TensorRT-LLM's llguidance backend does, takes ``text``."""
    matcher = guidance.matcher(LLMatcher.grammar_from_lark(lark))
    tokens = guidance.tokenizer.tokenize_str(text)
    return bool(matcher.consume_tokens(tokens) and matcher.is_accepting())


def lark_for(guidance: Guidance, guide: Guide, parallel: bool = False) -> str:
    return guided_lark(guide, TOOLS, parallel, guidance.open_terminal, guidance.close_terminal, 4)


def test_json_object_grammar_takes_compact_objects_only(guidance: Guidance) -> None:
    lark = lark_for(guidance, Guide(type="json"))
    assert guided_kwargs(lark) == {"grammar": lark}
    assert accepts(guidance, lark, '{"a":[1,2],"b":"c"}')
    assert not accepts(guidance, lark, "[1,2]")
    assert not accepts(guidance, lark, '{ "a": 1 }'), "no free whitespace"


def test_json_schema_grammar_enforces_the_schema(guidance: Guidance) -> None:
    lark = lark_for(guidance, Guide(type="json_schema", json_schema=DETECTIONS))
    cat = {"label": "cat", "kind": "animal", "box": [0, 500, 1000, 1000]}
    valid = {"objects": [cat], "confidence": 50}
    invalid = {"objects": [{"label": "cat", "box": [0, 0, 1, 1]}], "confidence": 50}
    assert accepts(guidance, lark, json.dumps(valid, separators=(",", ":")))
    assert not accepts(guidance, lark, json.dumps(invalid, separators=(",", ":")))


def test_tool_call_grammar_is_the_transformers_engines(guidance: Guidance) -> None:
    lark = lark_for(guidance, Guide(type="tool_call", tool_names=["get_current_weather"]))
    call = '{"name":"get_current_weather","arguments":{"location":"Paris"}}'
    assert accepts(guidance, lark, f"<tool_call>\n{call}\n</tool_call>")
    assert not accepts(guidance, lark, call), "the call must sit between its tags"
    other = '{"name":"record_inventory","arguments":{"room":{"indoor":true},"items":[]}}'
    assert not accepts(guidance, lark, f"<tool_call>\n{other}\n</tool_call>")


def test_guides_that_cannot_be_built_are_request_errors(guidance: Guidance) -> None:
    with pytest.raises(RequestError, match="json_schema needs a schema"):
        lark_for(guidance, Guide(type="json_schema"))
    with pytest.raises(RequestError, match="a tool call needs tools"):
        guided_lark(Guide(type="tool_call"), None, False, "a", "b", 4)
    bad = Guide(type="json_schema", json_schema={"properties": {"a": {"type": "nonsense"}}})
    with pytest.raises(RequestError, match="schema cannot be enforced"):
        guidance.matcher(LLMatcher.grammar_from_lark(lark_for(guidance, bad)))


def test_prompts_without_media_are_token_ids_with_media_text_and_data() -> None:
    assert prompt_input([1, 2, 3], "", [], []) == {"prompt_token_ids": [1, 2, 3]}
    image, frames = object(), [object(), object()]
    assert prompt_input([1], "<img>hi", [image], []) == {
        "prompt": "<img>hi",
        "multi_modal_data": {"image": [image]},
    }
    assert prompt_input([1], "v", [], [frames]) == {
        "prompt": "v",
        "multi_modal_data": {"video": [frames]},
    }


@pytest.mark.parametrize(
    ("reason", "stopped", "calls", "expected"),
    [
        ("length", False, False, "length"),
        ("length", True, False, "stop"),
        ("length", False, True, "length"),
        ("stop", False, False, "stop"),
        ("stop", False, True, "tool_calls"),
        ("cancelled", False, False, "stop"),
        (None, True, False, "stop"),
    ],
)
def test_finish_reasons(reason: str | None, stopped: bool, calls: bool, expected: str) -> None:
    assert finish_reason(reason, stopped, calls) == expected


@pytest.mark.parametrize(
    ("model_type", "vision", "video"),
    [
        ("qwen2_5_vl", True, "native"),
        ("llava_next", True, "frames_as_images"),
        ("llama", False, "none"),
    ],
)
def test_capabilities_follow_the_model_type(model_type: str, vision: bool, video: str) -> None:
    cost = PromptCost(chars_per_token=3.5, message_tokens=5, base_tokens=3)
    found = capabilities(
        model="m",
        model_type=model_type,
        multimodal_model_types=frozenset({"qwen2_5_vl", "llava_next"}),
        chat_template="{% if tools %}...{% endif %}",
        context_length=32768,
        prompt_cost=cost,
    )
    assert (found.engine, found.vision, found.video) == ("trtllm", vision, video)
    assert found.tools and found.guided_decoding and found.prompt_cost == cost


def test_control_tokens_in_request_text_are_found_where_they_are() -> None:
    tokens = ["<|im_end|>", "<|image_pad|>"]
    clean = GenerateRequest(messages=[Message("user", [TextPart("a picture")])], tools=TOOLS)
    assert control_token_in(clean, tokens) is None
    in_text = GenerateRequest(messages=[Message("user", [TextPart("x<|image_pad|>")])])
    found = control_token_in(in_text, tokens)
    assert found is not None and found.startswith("messages[0].content[0]")
    call = ToolCall("c1", ToolCallFunction("f", '{"q": "<|im_end|>"}'))
    in_call = GenerateRequest(messages=[Message("assistant", None, tool_calls=[call])])
    assert (control_token_in(in_call, tokens) or "").startswith("messages[0].tool_calls[0]")
