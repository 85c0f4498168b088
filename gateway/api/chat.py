"""``POST /v1/chat/completions`` (and ``/openai/v1/...``, the Groq SDK's path).

The handler is the request's path, one stage per line: API key → parse → resolve the
model → limits → media intake → the contract's request → Triton → a completion or an SSE
stream, whose last chunk waits until the request's usage is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

import msgspec
from litestar import Controller, Request, Response, post
from litestar.response import Stream
from litestar.types import Receive

from gateway.api import admission
from gateway.api.admission import Ticket
from gateway.api.chat_request import ChatCompletionRequest, parse_chat_request
from gateway.api.chat_response import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    XGroq,
    tool_call_deltas,
    tool_calls,
)
from gateway.api.guides import Guidance, guidance
from gateway.api.services import Services
from gateway.errors import ApiError
from gateway.media.body import read_chat_body
from gateway.media.intake import Intake, intake
from gateway.telemetry import current_request
from inference import contract

log = logging.getLogger("visiongate.chat")

T = TypeVar("T")
Events = AsyncGenerator[str | contract.Final, None]

_encode = msgspec.json.Encoder().encode
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class ClientDisconnected(ApiError):
    """The client went away before the answer was ready (nginx's 499; nobody reads it)."""

    status_code = 499
    code = "client_closed_request"


@dataclass
class Clock:
    """When each stage began, for Groq's timings (seconds, ``time.perf_counter``)."""

    received: float
    submitted: float = 0.0
    first: float = 0.0
    done: float = 0.0

    def usage(self, final: contract.Final) -> Usage:
        """Token counts and timings."""
        prompt_time = self.first - self.submitted
        completion_time = self.done - self.first
        return Usage(
            prompt_tokens=final.prompt_tokens,
            completion_tokens=final.completion_tokens,
            total_tokens=final.prompt_tokens + final.completion_tokens,
            queue_time=round(self.submitted - self.received, 6),
            prompt_time=round(prompt_time, 6),
            completion_time=round(completion_time, 6),
            total_time=round(prompt_time + completion_time, 6),
        )


def generate_request(
    chat: ChatCompletionRequest, media: Intake, guided: Guidance, default_max_tokens: int
) -> contract.GenerateRequest:
    """The contract's request: the chat after intake, its sampling, tools and guide."""
    request = contract.GenerateRequest(
        messages=media.messages,
        stop=chat.stop_list,
        seed=chat.seed,
        tools=guided.tools,
        tool_choice=guided.tool_choice,
        guide=guided.guide,
    )
    if chat.parallel_tool_calls is not None:
        request.parallel_tool_calls = chat.parallel_tool_calls
    request.max_tokens = chat.max_completion_tokens or chat.max_tokens or default_max_tokens
    if chat.temperature is not None:
        request.temperature = chat.temperature
    if chat.top_p is not None:
        request.top_p = chat.top_p
    if chat.presence_penalty is not None:
        request.presence_penalty = chat.presence_penalty
    if chat.frequency_penalty is not None:
        request.frequency_penalty = chat.frequency_penalty
    return request


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[object]) -> None:
    # The body has been read, so the next message uvicorn delivers is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, stop it (and so its Triton request)."""
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.create_task(_cancel_on_disconnect(request.receive, task))
    try:
        return await work
    except asyncio.CancelledError:
        if not watcher.done() or watcher.cancelled():
            raise
        task.uncancel()
        raise ClientDisconnected("The client closed the connection.") from None
    finally:
        watcher.cancel()


class ChatController(Controller):
    """Chat completions."""

    @post(["/v1/chat/completions", "/openai/v1/chat/completions"], status_code=200)
    async def create(self, request: Request) -> Response[bytes] | Stream:
        """Create a chat completion, streamed as SSE when ``stream`` is true."""
        clock = Clock(received=time.perf_counter())
        services: Services = request.app.state.services
        stage = services.telemetry.stage  # a child span per stage of the request
        principal = await stage("visiongate.auth", admission.authenticate(services, request))
        body = await read_chat_body(request, services.settings)
        chat = parse_chat_request(body, services.settings)
        model = services.registry.resolve(chat.model)
        if not model.described:  # Triton was not ready when this worker started
            await services.registry.describe(services.backend.describe)
        info = current_request()
        if info is not None:
            info.model, info.org, info.tier = model.id, principal.org_name, principal.tier
        guided = guidance(chat, model, services.settings)
        ids = _ids()
        ticket = await stage(
            "visiongate.limits",
            admission.admit(services, principal, chat, model, ids[1], clock.received),
        )
        # From here on every response, errors included, carries the rate-limit headers.
        request.state.rate_limit_headers = ticket.headers
        status = "failed"
        try:
            media = await stage(
                "visiongate.media",
                _unless_disconnected(
                    request,
                    intake(
                        chat.messages,
                        model,
                        services.settings,
                        video_fps=chat.video_fps,
                        video_max_frames=chat.video_max_frames,
                        request_bytes=len(body),
                        org_id=principal.org_id,
                    ),
                ),
            )
            ticket.images = len(media.images)
            ticket.video_frames = sum(media.frame_counts)
            clock.submitted = time.perf_counter()
            deltas: list[str] = []

            def restart() -> None:
                # A non-streamed answer failed over to another Triton: start it afresh.
                deltas.clear()
                ticket.deltas = 0

            generation = services.backend.generate(
                model.triton_model,
                generate_request(chat, media, guided, services.settings.default_max_tokens),
                media.images,
                media.video_frames,
                media.frame_counts,
                on_restart=None if chat.stream else restart,
            )
            events = admission.submitted(ticket, generation)
            created = int(time.time())
            if chat.stream:
                # The first event is awaited here so that an error before any output (a bad
                # request, Triton down) is a real HTTP error, not a 200 with an error event.
                first = await _unless_disconnected(request, _first(events))
                clock.first = time.perf_counter()
                sse = _sse(services, ticket, chat, ids, created, first, events, clock)
                status = "streaming"  # the stream itself finishes the ticket
                headers = {**_SSE_HEADERS, **ticket.headers}
                return Stream(sse, media_type="text/event-stream", headers=headers)
            collecting = _collect(events, clock, ticket, deltas)
            text, final = await _unless_disconnected(request, collecting)
            _observe(clock, final)
            status = "ok"
            await admission.finish(services, ticket, status, final)
            completion = _encode(_completion(chat, ids, created, text, final, clock))
            return Response(completion, media_type="application/json", headers=ticket.headers)
        except ApiError as exc:
            status = exc.code or str(exc.status_code)
            raise
        finally:
            if status != "streaming":
                await admission.finish(services, ticket, status, None)


def _ids() -> tuple[str, str]:
    """The completion id and Groq's request id (also ``x-request-id`` unless the client set it)."""
    info = current_request()
    hex_ = info.generated_hex if info and info.generated_hex else uuid.uuid4().hex
    return f"chatcmpl-{hex_}", f"req_{hex_}"


def _observe(clock: Clock, final: contract.Final) -> None:
    """Token counts and time to first token, for the request's span and metrics."""
    info = current_request()
    if info is not None:
        info.input_tokens, info.output_tokens = final.prompt_tokens, final.completion_tokens
        info.ttft_s = clock.first - clock.received


async def _first(events: Events) -> str | contract.Final:
    try:
        return await anext(events)
    except BaseException:
        await events.aclose()
        raise


async def _collect(
    events: Events, clock: Clock, ticket: Ticket, deltas: list[str]
) -> tuple[str, contract.Final]:
    async with aclosing(events):
        async for item in events:
            if not clock.first:
                clock.first = ticket.first_token = time.perf_counter()
            if isinstance(item, str):
                deltas.append(item)
                ticket.deltas += 1
            else:
                clock.done = time.perf_counter()
                return "".join(deltas), item
    raise AssertionError("the backend's stream always ends with a Final")


def _completion(
    chat: ChatCompletionRequest,
    ids: tuple[str, str],
    created: int,
    text: str,
    final: contract.Final,
    clock: Clock,
) -> ChatCompletion:
    calls = tool_calls(final.tool_calls, ids[1]) if final.tool_calls else None
    message = AssistantMessage(
        role="assistant", content=None if calls and not text else text, tool_calls=calls
    )
    return ChatCompletion(
        id=ids[0],
        created=created,
        model=chat.model,
        choices=[Choice(message=message, finish_reason=final.finish_reason)],
        usage=clock.usage(final),
        x_groq=XGroq(id=ids[1]),
    )


async def _sse(
    services: Services,
    ticket: Ticket,
    chat: ChatCompletionRequest,
    ids: tuple[str, str],
    created: int,
    first: str | contract.Final,
    events: Events,
    clock: Clock,
) -> AsyncIterator[bytes]:
    """The SSE body: role, content deltas, finish (+ usage), ``[DONE]``.

    The finish chunk goes out only once the request's usage is committed.
    """
    ticket.first_token = clock.first
    status = "cancelled"
    # With include_usage, OpenAI sends "usage": null on every chunk but the last.
    no_usage: msgspec.UnsetType | None = None if chat.include_usage else msgspec.UNSET

    def chunk(
        choices: list[ChunkChoice],
        usage: Usage | msgspec.UnsetType | None = no_usage,
        x_groq: XGroq | msgspec.UnsetType = msgspec.UNSET,
    ) -> bytes:
        body = ChatCompletionChunk(
            id=ids[0],
            created=created,
            model=chat.model,
            choices=choices,
            usage=usage,
            x_groq=x_groq,
        )
        return b"data: " + _encode(body) + b"\n\n"

    try:
        # A forced tool call has no content (null, as OpenAI sends it); anything else starts empty.
        forced_call = chat.tool_choice not in (None, "none", "auto")
        opening = Delta(role="assistant", content=None if forced_call else "")
        yield chunk([ChunkChoice(opening)], x_groq=XGroq(id=ids[1]))
        item = first
        while isinstance(item, str):
            yield chunk([ChunkChoice(Delta(content=item))])
            ticket.deltas += 1
            item = await anext(events)
        clock.done = time.perf_counter()
        usage = clock.usage(item)
        _observe(clock, item)
        status = "ok"
        await admission.finish(services, ticket, status, item)
        for i, call in enumerate(tool_calls(item.tool_calls, ids[1])):
            for delta in tool_call_deltas(i, call):
                yield chunk([ChunkChoice(Delta(tool_calls=[delta]))])
        yield chunk(
            [ChunkChoice(Delta(), finish_reason=item.finish_reason)],
            x_groq=XGroq(id=ids[1], usage=usage),
        )
        if chat.include_usage:
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"
    except ApiError as exc:
        status = exc.code or str(exc.status_code)
        # Headers are gone; OpenAI's SDKs raise on an event that carries an error object.
        yield b"data: " + _encode(exc.body()) + b"\n\n"
    finally:
        await events.aclose()
        await admission.finish(services, ticket, status, None)
