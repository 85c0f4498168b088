"""Constrained decoding with llguidance: any JSON object, a JSON Schema, or tool calls.

A :class:`Guide` from the contract becomes an llguidance grammar; an ``LLMatcher`` over the
checkpoint's tokenizer then masks, at every step, the tokens that would break it. So the
output parses and validates even from an untrained model, as long as it ends before
``max_tokens`` does.
"""

from __future__ import annotations

import json
from typing import Any, cast

import llguidance
import llguidance.hf
import numpy as np
import torch
from llguidance import LLMatcher
from transformers.generation import LogitsProcessor

from inference.contract import Guide
from inference.engines.base import RequestError
from inference.tool_parsers import ToolCallFormat

# No free-form whitespace between JSON tokens: an unconstrained model could otherwise
# spend its whole budget on spaces.
JSON_OPTIONS: Any = {"whitespace_flexible": False}  # llguidance's JsonCompileOptions


def tool_names(tools: list[dict[str, Any]] | None) -> list[str]:
    """The function names of OpenAI ``tools``."""
    return [t.get("function", {}).get("name", "") for t in tools or []]


def _tool_schema(tools: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One JSON Schema that accepts a call of any of the named tools."""
    choices = []
    for tool in tools:
        function = tool.get("function", {})
        if function.get("name") not in names:
            continue
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        choices.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return choices[0] if len(choices) == 1 else {"anyOf": choices}


def tool_call_lark(
    guide: Guide,
    tools: list[dict[str, Any]] | None,
    parallel: bool,
    open_terminal: str,
    close_terminal: str,
    max_calls: int,
) -> str:
    """The Lark grammar of a forced tool call, each call between the two terminals."""
    names = guide.tool_names or tool_names(tools)
    if not tools or not names:
        raise RequestError("guide: a tool call needs tools")
    # Lark's %json takes its options from the schema's "x-guidance", not from JSON_OPTIONS.
    schema = json.dumps({**_tool_schema(tools, names), "x-guidance": JSON_OPTIONS})
    # Parallel calls are capped: an untrained or greedy model may never choose to stop.
    more = f' ("\\n" call){{0,{max_calls - 1}}}' if parallel and max_calls > 1 else ""
    return f'start: call{more}\ncall: {open_terminal} "\\n" %json {schema} "\\n" {close_terminal}'


class Guidance:
    """Compiles guides into matchers for one tokenizer."""

    def __init__(
        self,
        hf_tokenizer: Any,
        vocab_size: int,
        eos_ids: list[int],
        calls: ToolCallFormat,
        max_calls: int,
    ) -> None:
        self.tokenizer = llguidance.hf.from_tokenizer(
            hf_tokenizer, n_vocab=vocab_size, eos_token=eos_ids
        )
        self.vocab_size = vocab_size
        self.calls = calls
        self.max_calls = max_calls
        self.open_terminal = self._literal(hf_tokenizer, calls.open)
        self.close_terminal = self._literal(hf_tokenizer, calls.close)

    @staticmethod
    def _literal(hf_tokenizer: Any, text: str) -> str:
        """A Lark terminal for ``text``: by id when the tokenizer has it as one added token."""
        token_id = hf_tokenizer.convert_tokens_to_ids(text)
        if isinstance(token_id, int) and token_id != hf_tokenizer.unk_token_id:
            return f"<[{token_id}]>"
        return json.dumps(text)

    def grammar(self, guide: Guide, tools: list[dict[str, Any]] | None, parallel: bool) -> str:
        """The llguidance grammar for a guide."""
        if guide.type == "json":
            return cast(str, LLMatcher.grammar_from_json_schema({"type": "object"}, JSON_OPTIONS))
        if guide.type == "json_schema":
            if guide.json_schema is None:
                raise RequestError("guide: json_schema needs a schema")
            return cast(str, LLMatcher.grammar_from_json_schema(guide.json_schema, JSON_OPTIONS))
        lark = tool_call_lark(
            guide, tools, parallel, self.open_terminal, self.close_terminal, self.max_calls
        )
        return cast(str, LLMatcher.grammar_from_lark(lark))

    def matcher(self, grammar: str) -> LLMatcher:
        """A fresh matcher; an invalid grammar (a bad schema) is the request's fault."""
        matcher = LLMatcher(self.tokenizer, grammar)
        if matcher.is_error():
            raise RequestError(f"the schema cannot be enforced: {matcher.get_error()}")
        return matcher


class GuidedLogits(LogitsProcessor):
    """Masks every token the grammar does not allow next."""

    def __init__(self, matcher: LLMatcher, prompt_length: int, vocab_size: int) -> None:
        self.matcher = matcher
        self.seen = prompt_length
        self.vocab_size = vocab_size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for token in input_ids[0, self.seen :].tolist():
            if not self.matcher.consume_token(token):
                raise RuntimeError(f"guided decoding lost the grammar: {self.matcher.get_error()}")
        self.seen = input_ids.shape[1]
        packed = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(packed, bitorder="little")[: scores.shape[-1]].astype(bool)
        blocked = torch.from_numpy(~allowed).to(scores.device)
        if scores.shape[-1] > allowed.shape[0]:  # logits padded past the tokenizer's vocabulary
            pad = torch.ones(
                scores.shape[-1] - allowed.shape[0], dtype=torch.bool, device=scores.device
            )
            blocked = torch.cat([blocked, pad])
        return cast(torch.FloatTensor, scores.masked_fill(blocked, float("-inf")))
