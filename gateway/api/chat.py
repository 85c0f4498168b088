"""``POST /v1/chat/completions`` (and ``/openai/v1/...``, the Groq SDK's path).

The controller does HTTP: the API key, the body, parsing, then the chat service's events
(:mod:`gateway.api.chat_service`) as a JSON completion or an SSE stream
(:mod:`gateway.api.chat_render`), and a client that leaves (:mod:`gateway.api.disconnect`).
An error before the first output (a bad request, a limit, Triton down) is a real HTTP
error; a stream's first event is awaited before its 200 for that reason.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator

from litestar import Controller, Request, Response, post
from litestar.response import Stream

from gateway.api.admission import authenticate
from gateway.api.chat_render import Ids, completion, sse
from gateway.api.chat_request import parse_chat_request
from gateway.api.chat_service import Admitted, Event, answer
from gateway.api.disconnect import DisconnectWatch
from gateway.api.services import Services
from gateway.api.timing import Timing
from gateway.media.body import read_chat_body
from gateway.telemetry import current_request

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _ids() -> Ids:
    """The completion id and Groq's request id (also ``x-request-id`` unless the client set it)."""
    info = current_request()
    hex_ = info.generated_hex if info and info.generated_hex else uuid.uuid4().hex
    return Ids(f"chatcmpl-{hex_}", f"req_{hex_}")


async def next_event(events: AsyncGenerator[Event, None]) -> Event:
    """The next event; the stream is closed if there is none (an error)."""
    try:
        return await anext(events)
    except BaseException:
        await events.aclose()
        raise


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
            events = answer(
                services,
                principal,
                chat,
                request_bytes=len(body),
                request_id=ids.request,
                timing=timing,
            )
            admitted = await next_event(events)
            assert isinstance(admitted, Admitted)
            headers = admitted.headers
            # Media intake and the model's first event; the client may leave meanwhile.
            first = await watch.guard(next_event(events))
            if chat.stream:
                stream = sse(chat, ids, first, events)
                return Stream(
                    stream, media_type="text/event-stream", headers=_SSE_HEADERS | headers
                )
            body = await watch.guard(completion(chat, ids, first, events))
        finally:
            watch.stop()
        return Response(body, media_type="application/json", headers=headers)
