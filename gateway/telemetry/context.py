"""What this request is, as its stages learn it, for logs, spans and metrics."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

# A client's x-request-id is echoed only when it is short and plain; anything else is replaced.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


@dataclass
class RequestInfo:
    """One request's id, and the model, organisation and tier once they are known."""

    request_id: str
    # The hex of a generated id (``req_<hex>``), reused for the completion and usage ids.
    generated_hex: str | None = None
    model: str = ""
    tier: str = ""
    org: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    # Seconds from the request's arrival to the first generated token.
    ttft_s: float | None = None
    # The error code media intake refused the request with (a media-rejection metric).
    media_rejection: str | None = None


_current: ContextVar[RequestInfo | None] = ContextVar("visiongate_request", default=None)


def new_request(incoming: str | None) -> RequestInfo:
    """The request's id: the client's ``x-request-id`` if well-formed, else ``req_<hex>``."""
    if incoming and _WELL_FORMED.fullmatch(incoming):
        return RequestInfo(request_id=incoming)
    hex_ = uuid.uuid4().hex
    return RequestInfo(request_id=f"req_{hex_}", generated_hex=hex_)


def current_request() -> RequestInfo | None:
    """The request being served by this task, if any."""
    return _current.get()


def set_current(info: RequestInfo | None) -> object:
    """Make ``info`` current; returns the token for :func:`reset_current`."""
    return _current.set(info)


def reset_current(token: object) -> None:
    """Undo :func:`set_current`."""
    _current.reset(token)  # type: ignore[arg-type]
