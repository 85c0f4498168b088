"""Constrained decoding with llguidance: any JSON object, a JSON Schema, or tool calls.

A :class:`Guide` from the contract becomes an llguidance grammar; an ``LLMatcher`` over the
checkpoint's tokenizer then masks, at every step, the tokens that would break it. So the
output parses and validates even from an untrained model, as long as it ends before
``max_tokens`` does.
"""

from __future__ import annotations

import json
import re
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


def _parameters(function: dict[str, Any]) -> dict[str, Any]:
    """A function's parameters schema; a function without one takes an empty object."""
    return function.get("parameters") or {"type": "object", "properties": {}}


def _called(guide: Guide, tools: list[dict[str, Any]] | None) -> list[tuple[int, dict[str, Any]]]:
    """The tools a forced call may call, with their index in ``tools``."""
    names = guide.tool_names or tool_names(tools)
    functions = [(i, tool.get("function") or {}) for i, tool in enumerate(tools or [])]
    called = [(i, f) for i, f in functions if f.get("name") and f["name"] in names]
    if not called:
        raise RequestError("guide: a tool call needs tools")
    return called


def tool_call_lark(
    guide: Guide,
    tools: list[dict[str, Any]] | None,
    parallel: bool,
    open_terminal: str,
    close_terminal: str,
    max_calls: int,
) -> str:
    """The Lark grammar of a forced tool call, each call between the two terminals.

    A call is ``{"name":...,"arguments":...}`` written out in Lark, its arguments a ``%json``
    of their own: each tool's parameters stay a whole JSON Schema document, so their local
    ``$ref`` (``#/$defs/...``, what pydantic writes for nested models) resolve against it.
    """
    called = _called(guide, tools)
    # Parallel calls are capped: an untrained or greedy model may never choose to stop.
    more = f' ("\\n" call){{0,{max_calls - 1}}}' if parallel and max_calls > 1 else ""
    choices = " | ".join(f"call_{i}" for i, _ in called)
    rules = [
        f"start: call{more}",
        f'call: {open_terminal} "\\n" ({choices}) "\\n" {close_terminal}',
    ]
    for i, function in called:
        opening = json.dumps(f'{{"name":{json.dumps(function["name"])},"arguments":')
        # Lark's %json takes its options from the schema's "x-guidance", not JSON_OPTIONS.
        schema = json.dumps({**_parameters(function), "x-guidance": JSON_OPTIONS})
        rules += [f'call_{i}: {opening} arguments_{i} "}}"', f"arguments_{i}: %json {schema}"]
    return "\n".join(rules)


def _reason(error: str) -> str:
    """llguidance's complaint without its position and grammar listing (ids, internals)."""
    first = error.strip().splitlines()[0] if error.strip() else "unknown error"
    first = re.sub(r"^at \d+\(\d+\): ", "", first)
    return first.removeprefix("failed to compile JSON schema: ")[:300]


def schema_error(
    error: str, guide: Guide | None, tools: list[dict[str, Any]] | None
) -> RequestError:
    """A grammar that does not compile, as the request's fault naming the schema at fault.

    For a tool call, each callable tool's parameters are compiled alone to find the one.
    """
    if guide is not None and guide.type == "tool_call":
        for i, function in _called(guide, tools):
            grammar = LLMatcher.grammar_from_json_schema(_parameters(function), JSON_OPTIONS)
            problem = LLMatcher.validate_grammar(grammar)
            if problem:
                error, param = problem, f"tools[{i}].function.parameters"
                break
        else:
            param = "tools"
        code = "invalid_function_parameters"
    else:
        param, code = "response_format.json_schema.schema", "invalid_json_schema"
    return RequestError(
        f"The schema cannot be enforced by guided decoding: {_reason(error)} (in `{param}`).",
        param=param,
        code=code,
    )


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

    def matcher(
        self,
        grammar: str,
        guide: Guide | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> LLMatcher:
        """A fresh matcher; an invalid grammar (a bad schema) is the request's fault.

        ``guide`` and ``tools``, the grammar's source, let the error name the schema at fault.
        """
        matcher = LLMatcher(self.tokenizer, grammar)
        if matcher.is_error():
            raise schema_error(matcher.get_error(), guide, tools)
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
