"""The chat service's events as a Responses API answer: one ``response`` object, or its events.

The stream is ``response.created``, ``response.in_progress``, the message item (added, its
``output_text`` part added, text deltas, done), one ``function_call`` item per tool call
(added, argument deltas, done), then ``response.completed`` (``response.incomplete`` when the
answer ran into ``max_output_tokens``) carrying the whole response and its usage. An error
once the stream has begun goes out as an ``error`` event (the OpenAI SDK raises on it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.api.chat_response import ARGUMENT_FRAGMENT_CHARS, tool_calls
from gateway.api.chat_service import Answered, Event
from gateway.api.responses_request import ResponsesRequest
from gateway.backend import Restarted
from gateway.errors import ApiError

encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class ResponseIds:
    """The response's id, its message item's id, Groq's request id, and when it was created."""

    hex: str
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def response(self) -> str:
        return f"resp_{self.hex}"

    @property
    def message(self) -> str:
        return f"msg_{self.hex}"

    @property
    def request(self) -> str:
        return f"req_{self.hex}"


def _message(ids: ResponseIds, text: str, status: str) -> dict[str, Any]:
    return {
        "id": ids.message,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _function_calls(ids: ResponseIds, answered: Answered) -> list[dict[str, Any]]:
    return [
        {
            "id": f"fc_{ids.hex}{i}",
            "type": "function_call",
            "call_id": call.id,
            "name": call.function.name,
            "arguments": call.function.arguments,
            "status": "completed",
        }
        for i, call in enumerate(tool_calls(answered.final.tool_calls, ids.request))
    ]


def _response(
    request: ResponsesRequest,
    ids: ResponseIds,
    output: list[dict[str, Any]],
    answered: Answered | None = None,
) -> dict[str, Any]:
    """The ``response`` object: in progress (no answer yet) or finished."""
    status, incomplete, usage = "in_progress", None, None
    if answered is not None:
        status = "completed"
        if answered.final.finish_reason == "length":
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        counts = answered.usage
        usage = {
            "input_tokens": counts.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": counts.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": counts.total_tokens,
        }
    fmt = request.text_format
    return {
        "id": ids.response,
        "object": "response",
        "created_at": ids.created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": None,
        "store": False,
        "temperature": request.temperature,
        "text": {"format": msgspec.to_builtins(fmt) if fmt else {"type": "text"}},
        "tool_choice": request.tool_choice or "auto",
        "tools": request.tools or [],
        "top_p": request.top_p,
        "usage": usage,
        "metadata": request.metadata or {},
    }


async def response(
    request: ResponsesRequest,
    ids: ResponseIds,
    first: Event,
    events: AsyncGenerator[Event, None],
) -> bytes:
    """The JSON body of a non-streamed answer."""
    deltas: list[str] = []
    item = first
    async with aclosing(events):
        while not isinstance(item, Answered):
            if isinstance(item, Restarted):
                deltas.clear()
            elif isinstance(item, str):
                deltas.append(item)
            item = await anext(events)
    text, calls = "".join(deltas), _function_calls(ids, item)
    output = ([_message(ids, text, "completed")] if text or not calls else []) + calls
    return encode(_response(request, ids, output, item))


async def sse(
    request: ResponsesRequest,
    ids: ResponseIds,
    first: Event,
    events: AsyncGenerator[Event, None],
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed answer, from its first event on."""
    sequence = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal sequence
        body = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + encode(body) + b"\n\n"

    text: list[str] = []
    at = {"item_id": ids.message, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}

    opening = _message(ids, "", "in_progress") | {"content": []}

    def open_message() -> list[bytes]:
        return [
            event("response.output_item.added", item=opening, output_index=0),
            event("response.content_part.added", part=part, **at),
        ]

    def close_message() -> list[bytes]:
        joined = "".join(text)
        return [
            event("response.output_text.done", text=joined, logprobs=[], **at),
            event("response.content_part.done", part=part | {"text": joined}, **at),
            event(
                "response.output_item.done", item=_message(ids, joined, "completed"), output_index=0
            ),
        ]

    async with aclosing(events):
        try:
            yield event("response.created", response=_response(request, ids, []))
            yield event("response.in_progress", response=_response(request, ids, []))
            item = first
            while not isinstance(item, Answered):
                if isinstance(item, str) and item:  # "" only marks the first token
                    if not text:
                        for chunk in open_message():
                            yield chunk
                    text.append(item)
                    yield event("response.output_text.delta", delta=item, logprobs=[], **at)
                item = await anext(events)
            calls = _function_calls(ids, item)
            output = []
            if text or not calls:
                if not text:
                    for chunk in open_message():
                        yield chunk
                for chunk in close_message():
                    yield chunk
                output.append(_message(ids, "".join(text), "completed"))
            for call in calls:
                index = len(output)
                where = {"item_id": call["id"], "output_index": index}
                added = call | {"arguments": "", "status": "in_progress"}
                yield event("response.output_item.added", item=added, output_index=index)
                arguments = call["arguments"]
                for start in range(0, len(arguments), ARGUMENT_FRAGMENT_CHARS):
                    fragment = arguments[start : start + ARGUMENT_FRAGMENT_CHARS]
                    yield event("response.function_call_arguments.delta", delta=fragment, **where)
                yield event("response.function_call_arguments.done", arguments=arguments, **where)
                yield event("response.output_item.done", item=call, output_index=index)
                output.append(call)
            finished = _response(request, ids, output, item)
            yield event(f"response.{finished['status']}", response=finished)
        except ApiError as exc:
            yield event("error", error=msgspec.to_builtins(exc.body())["error"])
