"""``POST /v1/chat/completions`` (and ``/openai/v1/...``, the Groq SDK's path).

The controller does HTTP: the API key, the body, parsing, then the chat service's events
(:mod:`gateway.api.chat_service`) as a JSON completion or an SSE stream
(:mod:`gateway.api.chat_render`; :mod:`gateway.api.choices_render` for ``n`` above 1),
and a client that leaves (:mod:`gateway.api.disconnect`).
An error before the first output (a bad request, a limit, Triton down) is a real HTTP
error; a stream's first event is awaited before its 200 for that reason.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from litestar import Controller, Request, Response, post
from litestar.response import Stream

from gateway.api import choices_render
from gateway.api.admission import authenticate
from gateway.api.chat_render import Ids, completion, sse
from gateway.api.chat_request import ChatCompletionRequest, parse_chat_request
from gateway.api.chat_service import Admitted, Event, answer
from gateway.api.disconnect import DisconnectWatch
from gateway.api.services import Services
from gateway.api.timing import Timing
from gateway.auth import Principal
from gateway.media.body import read_chat_body
from gateway.telemetry import current_request

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def request_hex() -> str:
    """The hex behind the request's ids (also ``x-request-id`` unless the client set it)."""
    info = current_request()
    return info.generated_hex if info and info.generated_hex else uuid.uuid4().hex


def _ids() -> Ids:
    """The completion id and Groq's request id."""
    hex_ = request_hex()
    return Ids(f"chatcmpl-{hex_}", f"req_{hex_}")


async def _next(events: AsyncGenerator[Event, None]) -> Event:
    """The next event; the stream is closed if there is none (an error)."""
    try:
        return await anext(events)
    except BaseException:
        await events.aclose()
        raise


@dataclass(frozen=True, slots=True)
class Started:
    """An answer under way: its rate-limit headers, its first output, and the rest of it."""

    headers: dict[str, str]
    first: Event
    events: AsyncGenerator[Event, None]


async def start_answer(
    services: Services,
    principal: Principal,
    chat: ChatCompletionRequest,
    *,
    request_bytes: int,
    request_id: str,
    timing: Timing,
    watch: DisconnectWatch,
) -> Started:
    """Admit ``chat`` and wait for its first output (media intake and the model meanwhile).

    Every error up to the first output is raised here, so it is a real HTTP error.
    """
    events = answer(
        services,
        principal,
        chat,
        request_bytes=request_bytes,
        request_id=request_id,
        timing=timing,
    )
    admitted = await _next(events)
    assert isinstance(admitted, Admitted)
    # The client may leave during media intake or while the model starts.
    first = await watch.guard(_next(events))
    return Started(admitted.headers, first, events)


class ChatController(Controller):
    """Chat completions."""

    @post(["/v1/chat/completions", "/openai/v1/chat/completions"], status_code=200)
    async def create(self, request: Request) -> Response[bytes] | Stream:
        """Create a chat completion, streamed as SSE when ``stream`` is true."""
        timing = Timing.start()
        services: Services = request.app.state.services
        principal = await services.telemetry.stage(
            "visiongate.auth", authenticate(services, request)
        )
        body = await read_chat_body(request, services.settings)
        chat = parse_chat_request(body, services.settings)
        ids = _ids()
        watch = DisconnectWatch(request.receive)
        try:
            started = await start_answer(
                services,
                principal,
                chat,
                request_bytes=len(body),
                request_id=ids.request,
                timing=timing,
                watch=watch,
            )
            first, events, headers = started.first, started.events, started.headers
            several = chat.choices > 1
            if chat.stream:
                render = choices_render.sse if several else sse
                stream = render(chat, ids, first, events)
                return Stream(stream, media_type="text/event-stream", headers=SSE_HEADERS | headers)
            whole = choices_render.completion if several else completion
            body = await watch.guard(whole(chat, ids, first, events))
        finally:
            watch.stop()
        return Response(body, media_type="application/json", headers=headers)
