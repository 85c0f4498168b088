"""The chat-completions response and stream chunks, shaped exactly as OpenAI and Groq send them.

Groq's extras sit where Groq puts them: on a completion, the timing fields inside ``usage``
and ``x_groq: {id}``; in a stream, ``x_groq: {id}`` on the first chunk and
``x_groq: {id, usage}`` on the chunk that carries the finish reason.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from inference import contract


class Usage(msgspec.Struct):
    """Token counts, with Groq's timings in seconds."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    queue_time: float
    prompt_time: float
    completion_time: float
    total_time: float


class XGroq(msgspec.Struct, omit_defaults=True):
    """Groq's per-request object."""

    id: str
    usage: Usage | None = None


class ToolCallFunction(msgspec.Struct):
    """The function of a tool call the model made."""

    name: str
    arguments: str


class ToolCall(msgspec.Struct):
    """A tool call the model made."""

    id: str
    function: ToolCallFunction
    type: str = "function"


class TopLogprob(msgspec.Struct):
    """An alternative token at one position."""

    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(msgspec.Struct):
    """A generated token, its log-probability and the most likely alternatives."""

    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(msgspec.Struct):
    """A choice's ``logprobs``: one entry per token of its content."""

    content: list[TokenLogprob]
    refusal: None = None


def _token(raw: list[int]) -> str:
    """A token's text; one that is part of a UTF-8 character is written ``bytes:\\xNN…``."""
    try:
        return bytes(raw).decode()
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)


def choice_logprobs(tokens: list[contract.TokenLogprob]) -> ChoiceLogprobs:
    """The engine's token logprobs in OpenAI's shape."""
    return ChoiceLogprobs(
        content=[
            TokenLogprob(
                token=_token(t.bytes),
                logprob=t.logprob,
                bytes=t.bytes,
                top_logprobs=[TopLogprob(_token(a.bytes), a.logprob, a.bytes) for a in t.top],
            )
            for t in tokens
        ]
    )


class AssistantMessage(msgspec.Struct, omit_defaults=True):
    """The answer."""

    role: str
    content: str | None
    tool_calls: list[ToolCall] | None = None


class Choice(msgspec.Struct):
    """A choice of a completion (the one, unless ``n`` asks for more)."""

    message: AssistantMessage
    finish_reason: str
    index: int = 0
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(msgspec.Struct):
    """A ``chat.completion`` object."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    x_groq: XGroq
    object: str = "chat.completion"
    system_fingerprint: str | None = None


class FunctionDelta(msgspec.Struct, omit_defaults=True):
    """A piece of a tool call's function: its name first, then fragments of its arguments."""

    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, omit_defaults=True):
    """A piece of a tool call inside a stream, as OpenAI sends it."""

    index: int
    function: FunctionDelta
    id: str | None = None
    type: str | None = None


# OpenAI streams arguments a token or so at a time; clients concatenate the fragments.
ARGUMENT_FRAGMENT_CHARS = 16


def tool_call_deltas(index: int, call: ToolCall) -> list[ToolCallDelta]:
    """One call as stream deltas: id, type and name (with empty arguments), then fragments."""
    arguments = call.function.arguments
    first = ToolCallDelta(
        index, FunctionDelta(name=call.function.name, arguments=""), id=call.id, type=call.type
    )
    return [first] + [
        ToolCallDelta(index, FunctionDelta(arguments=arguments[at : at + ARGUMENT_FRAGMENT_CHARS]))
        for at in range(0, len(arguments), ARGUMENT_FRAGMENT_CHARS)
    ]


class Delta(msgspec.Struct, omit_defaults=True):
    """What a chunk adds to the message."""

    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(msgspec.Struct):
    """The choice a chunk adds to (``index``: which of ``n``)."""

    delta: Delta
    finish_reason: str | None = None
    index: int = 0
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(msgspec.Struct):
    """A ``chat.completion.chunk`` object; ``usage`` is present only when usage was asked for."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None
    usage: Usage | UnsetType | None = UNSET
    x_groq: XGroq | UnsetType = UNSET


def tool_calls(raw: list[dict[str, Any]], request_id: str, choice: int = 0) -> list[ToolCall]:
    """The model's ``{"name", "arguments"}`` list as OpenAI tool calls (of choice ``choice``)."""
    prefix = f"call_{request_id[-12:]}" if choice == 0 else f"call_{request_id[-12:]}_{choice}_"
    return [
        ToolCall(
            id=f"{prefix}{i}",
            function=ToolCallFunction(
                name=str(call.get("name", "")),
                arguments=call["arguments"]
                if isinstance(call.get("arguments"), str)
                else msgspec.json.encode(call.get("arguments", {})).decode(),
            ),
        )
        for i, call in enumerate(raw)
    ]
