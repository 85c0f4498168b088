"""Engine pieces behind issue 15's fixes: tool grammars with $defs, cut-off calls, 64-bit seeds."""

from __future__ import annotations

import json

import pytest
import torch

from inference import tiny_vlm
from inference.contract import GenerateRequest, Guide, Message
from inference.engines.base import RequestError
from inference.engines.trtllm_mapping import sampling_kwargs
from inference.guidance import Guidance
from inference.sampling import SeededSampler, seeded_rng
from inference.tool_parsers import tool_call_format

HERMES = tool_call_format("hermes")
NESTED = {
    "type": "function",
    "function": {
        "name": "record",
        "parameters": {
            "$defs": {
                "Item": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                    "additionalProperties": False,
                }
            },
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
            "required": ["items"],
            "additionalProperties": False,
        },
    },
}
DANGLING = {
    "type": "function",
    "function": {
        "name": "dangling",
        "parameters": {"type": "object", "properties": {"a": {"$ref": "#/$defs/Nowhere"}}},
    },
}


@pytest.fixture(scope="module")
def guidance() -> Guidance:
    tokenizer = tiny_vlm.load_tokenizer()
    return Guidance(tokenizer, len(tokenizer), [tokenizer.eos_token_id], HERMES, 4)


def accepts(guidance: Guidance, guide: Guide, tools: list[dict], text: str) -> bool:
    matcher = guidance.matcher(guidance.grammar(guide, tools, True), guide, tools)
    tokens = guidance.tokenizer.tokenize_str(text)
    return bool(matcher.consume_tokens(tokens) and matcher.is_accepting())


def test_a_tool_call_grammar_resolves_refs_within_the_tools_parameters(
    guidance: Guidance,
) -> None:
    guide = Guide(type="tool_call")
    call = {"name": "record", "arguments": {"items": [{"name": "cup"}]}}
    text = f"<tool_call>\n{json.dumps(call, separators=(',', ':'))}\n</tool_call>"
    assert accepts(guidance, guide, [NESTED], text)
    wrong = {"name": "record", "arguments": {"items": [{"label": "cup"}]}}
    bad_text = f"<tool_call>\n{json.dumps(wrong, separators=(',', ':'))}\n</tool_call>"
    assert not accepts(guidance, guide, [NESTED], bad_text), "the $ref'd schema holds"


def test_a_schema_that_does_not_compile_names_its_tool_without_grammar_internals(
    guidance: Guidance,
) -> None:
    guide = Guide(type="tool_call")
    tools = [NESTED, DANGLING]
    with pytest.raises(RequestError) as caught:
        guidance.matcher(guidance.grammar(guide, tools, True), guide, tools)
    error = caught.value
    assert error.param == "tools[1].function.parameters"
    assert error.code == "invalid_function_parameters"
    assert "Nowhere" in error.message and "<[" not in error.message and "%json" not in str(error)


def test_a_call_cut_off_is_dropped_and_closed_calls_kept() -> None:
    whole = '<tool_call>\n{"name":"a","arguments":{}}\n</tool_call>'
    half = '<tool_call>\n{"name":"b","argu'
    assert HERMES.parse(half, cut_off=True) == ("", [])
    assert HERMES.parse(whole + "\n" + half, cut_off=True) == (
        "",
        [{"name": "a", "arguments": "{}"}],
    )
    assert HERMES.parse(half) == (half, []), "a call that ended on its own stays as written"


def draws(seed: int, vocabulary: int = 1000, steps: int = 20) -> list[int]:
    sampler = SeededSampler(seeded_rng(seed))
    scores = torch.zeros((1, vocabulary))
    ids = torch.zeros((1, 1), dtype=torch.long)
    return [int(sampler(ids, scores).argmax()) for _ in range(steps)]


def test_every_bit_of_a_64_bit_seed_counts() -> None:
    assert draws(5) == draws(5)
    assert draws(5) != draws(2**32 + 5)
    assert draws(-1) != draws(2**63 - 1)
    assert draws(2**63 - 1) != draws(2**62 - 1)


def test_the_sampler_never_draws_a_masked_token() -> None:
    sampler = SeededSampler(seeded_rng(7))
    scores = torch.full((1, 50), float("-inf"))
    scores[0, [0, 49]] = 0.0
    ids = torch.zeros((1, 1), dtype=torch.long)
    drawn = {int(sampler(ids, scores).argmax()) for _ in range(200)}
    assert drawn == {0, 49}


def test_tensorrt_llms_uint64_seed_takes_every_int64() -> None:
    request = GenerateRequest(messages=[Message(role="user", content="hi")])
    assert sampling_kwargs(request, 5, -1)["seed"] == 2**64 - 1
    assert sampling_kwargs(request, 5, 2**63 - 1)["seed"] == 2**63 - 1
