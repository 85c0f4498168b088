"""Request bodies taken as their JSON types are written.

Litestar decodes ``data`` leniently (the string ``"10"`` passes for an integer); each
handler re-reads the body strictly, so a limit sent as a string is a 400 naming it.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from litestar import Request

from gateway.api.chat_request import validation_param
from gateway.errors import InvalidRequest

T = TypeVar("T")


async def strict(request: Request, data: T) -> T:
    """``data`` as the request body decodes strictly into its type; raises InvalidRequest."""
    try:
        decoded: T = msgspec.json.decode(await request.body(), type=type(data), strict=True)
    except msgspec.ValidationError as exc:
        message, param = validation_param(exc)
        raise InvalidRequest(f"{message}.", param=param, code="invalid_value") from None
    return decoded
