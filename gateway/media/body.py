"""Reading a chat request's body with Groq's base64 rule applied as it streams in.

A request carrying base64 image data may be at most ``max_base64_request_bytes`` (413); other
requests may be as large as ``max_request_body_bytes``. The body is scanned for the start of
an image data URI as it arrives, so once it is past the cap and such a URI has been seen, the
answer is known: the bytes already kept are dropped and the rest is read and discarded
(answering before the client has finished sending would make many clients report a broken
connection instead of the 413). Intake checks the same rule again on the parsed request,
where the URI's JSON spelling cannot hide it.

The body is JSON: a Content-Type other than ``application/json`` or a ``+json`` type (with
any parameters) is refused with 415 before any of it is read; a request without one (or an
empty one) is read as JSON, as clients that post a JSON string without naming it expect.
"""

from __future__ import annotations

import re

from litestar import Request

from gateway.errors import ApiError, PayloadTooLarge
from gateway.settings import Settings

# `data:image/` as JSON may write it (`\/` is a legal escape of `/`), in any letter case.
_MARKER = re.compile(rb"data:image(?:/|\\/)", re.IGNORECASE)
_OVERLAP = len(b"data:image\\/") - 1


class UnsupportedMediaType(ApiError):
    """The request body is not declared as JSON (415)."""

    status_code = 415
    code = "unsupported_media_type"


def check_json_content_type(request: Request) -> None:
    """Refuse a body whose Content-Type is set and is not a JSON type."""
    header = request.headers.get("content-type", "").strip()
    if not header:
        return
    media_type = request.content_type[0].lower()
    if media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(
        f"The Content-Type header must be application/json, not `{header[:100]}`."
    )


async def read_chat_body(request: Request, settings: Settings) -> bytes:
    """The whole body, or PayloadTooLarge once it is a too-large base64-image request.

    UnsupportedMediaType first when the Content-Type is not JSON.
    """
    check_json_content_type(request)
    cap = settings.max_base64_request_bytes
    announced = request.content_length
    if announced is not None and announced <= cap:
        return await request.body()  # within the cap whatever it carries: nothing to scan
    chunks: list[bytes] = []
    size = 0
    tail = b""
    has_image_data = refused = False
    async for chunk in request.stream():
        size += len(chunk)
        if refused:
            continue
        if not has_image_data:
            window = tail + chunk
            has_image_data = _MARKER.search(window) is not None
            tail = window[-_OVERLAP:]
        if has_image_data and size > cap:
            refused = True
            chunks.clear()
            continue
        chunks.append(chunk)
    if refused:
        raise PayloadTooLarge(
            f"A request carrying base64 image data may be at most {cap} bytes; this one is {size}."
        )
    return b"".join(chunks)
