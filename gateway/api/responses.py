"""``POST /v1/responses`` (and ``/openai/v1/responses``): the Responses API, stateless subset.

The request (:mod:`gateway.api.responses_request`) becomes the chat completion it means, and
the chat service answers it with the same keys, limits, usage records and rate-limit headers
as ``/v1/chat/completions``; :mod:`gateway.api.responses_render` writes the answer as a
``response`` object or the Responses event stream.
"""

from __future__ import annotations

from litestar import Controller, Request, Response, post
from litestar.response import Stream

from gateway.api.admission import authenticate
from gateway.api.chat import SSE_HEADERS, request_hex, start_answer
from gateway.api.disconnect import DisconnectWatch
from gateway.api.responses_render import ResponseIds, response, sse
from gateway.api.responses_request import as_chat, in_responses_terms, parse_responses_request
from gateway.api.services import Services
from gateway.api.timing import Timing
from gateway.errors import ApiError
from gateway.media.body import read_chat_body


class ResponsesController(Controller):
    """Responses."""

    @post(["/v1/responses", "/openai/v1/responses"], status_code=200)
    async def create(self, request: Request) -> Response[bytes] | Stream:
        """Create a response, streamed as server-sent events when ``stream`` is true."""
        timing = Timing.start()
        services: Services = request.app.state.services
        principal = await services.telemetry.stage(
            "visiongate.auth", authenticate(services, request)
        )
        body = await read_chat_body(request, services.settings)
        wanted = parse_responses_request(body)
        ids = ResponseIds(request_hex())
        watch = DisconnectWatch(request.receive)
        try:
            try:  # up to the first output, errors are the chat's: named as this request names
                chat = as_chat(wanted, services.settings)
                started = await start_answer(
                    services,
                    principal,
                    chat,
                    request_bytes=len(body),
                    request_id=ids.request,
                    timing=timing,
                    watch=watch,
                )
            except ApiError as exc:
                raise in_responses_terms(exc, wanted) from None
            first, events, headers = started.first, started.events, started.headers
            if chat.stream:
                stream = sse(wanted, ids, first, events)
                return Stream(stream, media_type="text/event-stream", headers=SSE_HEADERS | headers)
            body = await watch.guard(response(wanted, ids, first, events))
        finally:
            watch.stop()
        return Response(body, media_type="application/json", headers=headers)
