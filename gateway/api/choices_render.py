"""``n`` choices as OpenAI's answer: one JSON completion, or one SSE stream interleaving them.

The stream opens with a role chunk per choice, then each chunk carries one choice's delta
(with its ``index``) as the choices generate at once. A choice's tool calls and finish chunk
follow its end; the last choice's come only once the usage is committed, carrying
``x_groq.usage`` as an ``n=1`` finish chunk does, then the usage chunk when asked for.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import msgspec

from gateway.api.chat_render import Ids, encode
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
from gateway.api.chat_service import Answered, ChoiceEvent, Event
from gateway.backend import Restarted
from gateway.errors import ApiError
from inference import contract


async def completion(
    chat: ChatCompletionRequest,
    ids: Ids,
    first: Event,
    events: AsyncGenerator[Event, None],
) -> bytes:
    """The JSON body of a non-streamed answer of ``n`` choices, by index."""
    n = chat.choices
    deltas: list[list[str]] = [[] for _ in range(n)]
    tokens: list[list[contract.TokenLogprob]] = [[] for _ in range(n)]
    item = first
    async with aclosing(events):
        while not isinstance(item, Answered):
            if isinstance(item, ChoiceEvent):
                i, event = item.index, item.item
                if isinstance(event, Restarted):
                    deltas[i].clear()
                    tokens[i].clear()
                elif isinstance(event, str):
                    deltas[i].append(event)
                elif isinstance(event, contract.DeltaLogprobs):
                    tokens[i].extend(event.tokens)
            item = await anext(events)
    choices = []
    for i, final in enumerate(item.choices):
        text = "".join(deltas[i])
        calls = tool_calls(final.tool_calls, ids.request, i) if final.tool_calls else None
        message = AssistantMessage(
            role="assistant", content=None if calls and not text else text, tool_calls=calls
        )
        logprobs = choice_logprobs(tokens[i]) if chat.logprobs else None
        choices.append(Choice(message, final.finish_reason, index=i, logprobs=logprobs))
    body = ChatCompletion(
        id=ids.completion,
        created=ids.created,
        model=chat.model,
        choices=choices,
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
    """The SSE body of a streamed answer of ``n`` choices, from its first event on."""
    no_usage: msgspec.UnsetType | None = None if chat.include_usage else msgspec.UNSET
    n = chat.choices

    def chunk(
        choice: ChunkChoice | None,
        usage: Usage | msgspec.UnsetType | None = no_usage,
        x_groq: XGroq | msgspec.UnsetType = msgspec.UNSET,
    ) -> bytes:
        body = ChatCompletionChunk(
            id=ids.completion,
            created=ids.created,
            model=chat.model,
            choices=[] if choice is None else [choice],
            usage=usage,
            x_groq=x_groq,
        )
        return b"data: " + encode(body) + b"\n\n"

    def ending(
        i: int, final: contract.Final, x_groq: XGroq | msgspec.UnsetType = msgspec.UNSET
    ) -> list[bytes]:
        """Choice ``i``'s tool calls, then its finish chunk."""
        out = [
            chunk(ChunkChoice(Delta(tool_calls=[delta]), index=i))
            for c, call in enumerate(tool_calls(final.tool_calls, ids.request, i))
            for delta in tool_call_deltas(c, call)
        ]
        finish = ChunkChoice(Delta(), finish_reason=final.finish_reason, index=i)
        return [*out, chunk(finish, x_groq=x_groq)]

    async with aclosing(events):
        try:
            forced_call = chat.tool_choice not in (None, "none", "auto")
            for i in range(n):
                opening = Delta(role="assistant", content=None if forced_call else "")
                x_groq = XGroq(id=ids.request) if i == 0 else msgspec.UNSET
                yield chunk(ChunkChoice(opening, index=i), x_groq=x_groq)
            tokens: list[list[contract.TokenLogprob]] = [[] for _ in range(n)]
            ended = 0
            last: tuple[int, contract.Final] | None = None  # ends with the usage
            item = first
            while not isinstance(item, Answered):
                if isinstance(item, ChoiceEvent):
                    i, event = item.index, item.item
                    if isinstance(event, contract.DeltaLogprobs):
                        tokens[i] = event.tokens
                    elif isinstance(event, str) and event:  # "" only marks the first token
                        logprobs = choice_logprobs(tokens[i]) if chat.logprobs else None
                        yield chunk(ChunkChoice(Delta(content=event), index=i, logprobs=logprobs))
                        tokens[i] = []
                    elif isinstance(event, contract.Final):
                        ended += 1
                        if ended == n:
                            last = (i, event)
                        else:
                            for out in ending(i, event):
                                yield out
                item = await anext(events)
            assert last is not None  # Answered follows every choice's Final
            for out in ending(*last, x_groq=XGroq(id=ids.request, usage=item.usage)):
                yield out
            if chat.include_usage:
                yield chunk(None, usage=item.usage)
            yield b"data: [DONE]\n\n"
        except ApiError as exc:
            yield b"data: " + encode(exc.body()) + b"\n\n"
