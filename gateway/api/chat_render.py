"""The chat service's events as OpenAI's answer: one JSON completion, or an SSE stream.

The stream is role, content deltas (each with the logprobs of its tokens when asked), tool
calls, the finish (+ usage), ``[DONE]``; since :class:`~gateway.api.chat_service.Answered`
comes only once the usage is committed, so does the finish chunk. An error once the stream has
begun goes out as an event carrying an error object (headers are gone; OpenAI's SDKs raise
on it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

import msgspec

from gateway.api.chat_request import ChatCompletionRequest
from gateway.api.chat_response import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    XGroq,
    choice_logprobs,
    tool_call_deltas,
    tool_calls,
)
from gateway.api.chat_service import Answered, Event
from gateway.backend import Restarted
from gateway.errors import ApiError
from inference import contract

encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Ids:
    """The completion's id and Groq's request id, and when it was created."""

    completion: str
    request: str
    created: int = field(default_factory=lambda: int(time.time()))


async def completion(
    chat: ChatCompletionRequest,
    ids: Ids,
    first: Event,
    events: AsyncGenerator[Event, None],
) -> bytes:
    """The JSON body of a non-streamed answer: every delta joined, then the final counts."""
    deltas: list[str] = []
    tokens: list[contract.TokenLogprob] = []
    item = first
    async with aclosing(events):
        while not isinstance(item, Answered):
            if isinstance(item, Restarted):
                deltas.clear()
                tokens.clear()
            elif isinstance(item, str):
                deltas.append(item)
            elif isinstance(item, contract.DeltaLogprobs):
                tokens.extend(item.tokens)
            item = await anext(events)
    text, final = "".join(deltas), item.final
    calls = tool_calls(final.tool_calls, ids.request) if final.tool_calls else None
    message = AssistantMessage(
        role="assistant", content=None if calls and not text else text, tool_calls=calls
    )
    body = ChatCompletion(
        id=ids.completion,
        created=ids.created,
        model=chat.model,
        choices=[
            Choice(
                message=message,
                finish_reason=final.finish_reason,
                logprobs=choice_logprobs(tokens) if chat.logprobs else None,
            )
        ],
        usage=item.usage,
        x_groq=XGroq(id=ids.request),
    )
    return encode(body)


async def sse(
    chat: ChatCompletionRequest,
    ids: Ids,
    first: Event,
    events: AsyncGenerator[Event, None],
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed answer, from its first event on."""
    # With include_usage, OpenAI sends "usage": null on every chunk but the last.
    no_usage: msgspec.UnsetType | None = None if chat.include_usage else msgspec.UNSET

    def chunk(
        choices: list[ChunkChoice],
        usage: Usage | msgspec.UnsetType | None = no_usage,
        x_groq: XGroq | msgspec.UnsetType = msgspec.UNSET,
    ) -> bytes:
        body = ChatCompletionChunk(
            id=ids.completion,
            created=ids.created,
            model=chat.model,
            choices=choices,
            usage=usage,
            x_groq=x_groq,
        )
        return b"data: " + encode(body) + b"\n\n"

    async with aclosing(events):
        try:
            # A forced tool call has no content (null, as OpenAI sends it); else it starts empty.
            forced_call = chat.tool_choice not in (None, "none", "auto")
            opening = Delta(role="assistant", content=None if forced_call else "")
            yield chunk([ChunkChoice(opening)], x_groq=XGroq(id=ids.request))
            item = first
            tokens: list[contract.TokenLogprob] = []  # the logprobs of the next delta
            while not isinstance(item, Answered):
                if isinstance(item, contract.DeltaLogprobs):
                    tokens = item.tokens
                elif isinstance(item, str) and item:  # "" only marks the first token
                    logprobs = choice_logprobs(tokens) if chat.logprobs else None
                    yield chunk([ChunkChoice(Delta(content=item), logprobs=logprobs)])
                    tokens = []
                item = await anext(events)
            final, usage = item.final, item.usage
            for i, call in enumerate(tool_calls(final.tool_calls, ids.request)):
                for delta in tool_call_deltas(i, call):
                    yield chunk([ChunkChoice(Delta(tool_calls=[delta]))])
            yield chunk(
                [ChunkChoice(Delta(), finish_reason=final.finish_reason)],
                x_groq=XGroq(id=ids.request, usage=usage),
            )
            if chat.include_usage:
                yield chunk([], usage=usage)
            yield b"data: [DONE]\n\n"
        except ApiError as exc:
            yield b"data: " + encode(exc.body()) + b"\n\n"
