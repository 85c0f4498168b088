"""The stages around inference: whose key (auth), may they (limits), and what it cost (usage).

``authenticate`` and ``admit`` run before media intake; ``finish`` runs exactly once per
admitted request, before its last byte goes out: it commits the usage record, corrects the
token reservation to what was really used, and frees the concurrency slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.chat_request import ChatCompletionRequest
from gateway.api.services import Services
from gateway.auth import InvalidApiKey, Principal
from gateway.errors import ApiError, DatabaseUnavailable
from gateway.limits import (
    Decision,
    LimiterUnavailable,
    count_chat,
    error_body,
    estimate_prompt,
    rate_limit_headers,
    unavailable_body,
)
from gateway.media.intake import planned_video_frames
from gateway.registry import ModelEntry
from gateway.usage import Usage
from inference import contract

log = logging.getLogger("visiongate.admission")

# What a database that does not answer raises (SQLAlchemy's errors, or the socket's).
DATABASE_ERRORS = (SQLAlchemyError, OSError)


class Unauthorized(ApiError):
    """Missing, unknown, revoked or expired key: one answer for all (401)."""

    status_code = 401
    code = "invalid_api_key"


class Refused(ApiError):
    """A limit or the quota says no (429), or the request alone exceeds a limit (413)."""

    def __init__(self, status_code: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        detail = body["error"]
        super().__init__(detail["message"], code=detail["code"], headers=headers)
        self.status_code = status_code
        self.type = detail["type"]


class LimiterDown(ApiError):
    """Redis is unreachable and the limiter is set to fail closed (503)."""

    status_code = 503
    type = "service_unavailable"


async def authenticate(services: Services, request: Request) -> Principal:
    """The organisation behind the request's bearer key."""
    try:
        return await services.auth.authenticate(request.headers.get("authorization"))
    except InvalidApiKey as exc:
        raise Unauthorized(exc.message) from None
    except DATABASE_ERRORS as exc:  # a key not in the cache needs the database
        raise DatabaseUnavailable(retry_after_s=services.settings.retry_after_s) from exc


@dataclass
class Ticket:
    """An admitted request: who, what was reserved, and how it ends."""

    principal: Principal
    model: str
    request_id: str
    received: float  # time.perf_counter() when the request arrived, as the chat handler's clock
    decision: Decision
    headers: dict[str, str]
    prompt_estimate: int
    images: int
    # Before intake: the most frames the videos may become; after: the frames really sent.
    video_frames: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Set once the request went to the model; then leaving early still costs its prompt.
    submitted: bool = False
    # The prompt's size as the model reported it (its Prefill), once it has.
    prefill_tokens: int | None = None
    first_token: float | None = None
    deltas: int = 0
    finished: bool = False

    def prompt_charged(self, final: contract.Final | None) -> tuple[int, bool]:
        """The prompt tokens to charge, and whether that number is the admission estimate.

        The model's final count; else its prefill report; else, once submitted, the
        estimate (the model may have taken the prompt before the client left); else 0.
        """
        if final is not None:
            return final.prompt_tokens, False
        if self.prefill_tokens is not None:
            return self.prefill_tokens, False
        return (self.prompt_estimate, True) if self.submitted else (0, False)


async def submitted(
    ticket: Ticket, events: AsyncGenerator[contract.Prefill | str | contract.Final, None]
) -> AsyncGenerator[str | contract.Final, None]:
    """``events`` from the model, with its Prefill noted on ``ticket`` instead of passed on."""
    ticket.submitted = True
    async with aclosing(events):
        async for item in events:
            if isinstance(item, contract.Prefill):
                ticket.prefill_tokens = item.prompt_tokens
            else:
                yield item


async def admit(
    services: Services,
    principal: Principal,
    chat: ChatCompletionRequest,
    model: ModelEntry,
    request_id: str,
    received: float,
) -> Ticket:
    """Reserve the request's estimated tokens and a concurrency slot, or refuse it.

    The reservation is the prompt's estimate plus the completion's ceiling: ``max_tokens``,
    or when the request sets none the default generation really allows.
    """
    settings = services.settings
    chars, messages, images = count_chat(msgspec.to_builtins(chat.messages))
    if chat.tools:  # their schemas go into the prompt
        chars += len(msgspec.json.encode(chat.tools))
    video_frames = planned_video_frames(chat.messages, chat.video_max_frames, settings)
    prompt = estimate_prompt(
        settings,
        model.prompt_cost,
        text_chars=chars,
        messages=messages,
        images=images,
        video_frames=video_frames,
    )
    completion = chat.max_completion_tokens or chat.max_tokens
    if completion is None:
        # What generation may really use: the default, within what the context leaves.
        completion = settings.default_max_tokens
        if model.context_length:
            completion = max(1, min(completion, model.context_length - prompt))
    tokens = prompt + completion
    limits = services.catalog.limits_for(principal.tier, model.id)
    try:
        decision = await services.limiter.admit(principal.org_id, model.id, limits, tokens)
    except DATABASE_ERRORS as exc:  # the monthly quota's baseline comes from usage records
        raise DatabaseUnavailable(retry_after_s=settings.retry_after_s) from exc
    except LimiterUnavailable as exc:
        body, headers = unavailable_body(exc)
        raise LimiterDown(
            body["error"]["message"], code=body["error"]["code"], headers=headers
        ) from None
    headers = rate_limit_headers(decision)
    if not decision.allowed:
        raise Refused(
            decision.status_code, error_body(decision, model.id, principal.org_name), headers
        )
    return Ticket(
        principal=principal,
        model=model.id,
        request_id=request_id,
        received=received,
        decision=decision,
        headers=headers,
        prompt_estimate=prompt,
        images=images,
        video_frames=video_frames,
    )


async def finish(
    services: Services, ticket: Ticket, status: str, final: contract.Final | None
) -> None:
    """Record usage and settle the limiter, once; a client leaving cannot interrupt it.

    Without a final (cancelled or failed), the prompt is what :meth:`Ticket.prompt_charged`
    says and the completion the deltas already streamed. A completed answer goes out only
    once its usage is committed, so failing to commit it is a 503; a failed request's
    record is best effort.
    """
    if ticket.finished:
        return
    ticket.finished = True
    await asyncio.shield(_finish(services, ticket, status, final))


async def _finish(
    services: Services, ticket: Ticket, status: str, final: contract.Final | None
) -> None:
    prompt, estimated = ticket.prompt_charged(final)
    completion = final.completion_tokens if final else ticket.deltas
    now = time.perf_counter()
    usage = Usage(
        request_id=ticket.request_id,
        org_id=ticket.principal.org_id,
        key_id=ticket.principal.key_id,
        model=ticket.model,
        prompt_tokens=prompt,
        prompt_estimated=estimated,
        completion_tokens=completion,
        images=ticket.images,
        video_frames=ticket.video_frames,
        status=status[:32],
        started_at=ticket.started_at,
        first_token_ms=None
        if ticket.first_token is None
        else (ticket.first_token - ticket.received) * 1000,
        duration_ms=(now - ticket.received) * 1000,
    )
    try:
        await services.recorder.record(usage)
    except Exception as exc:  # the recorder already retried; the database is not answering
        if final is not None:
            raise DatabaseUnavailable(retry_after_s=services.settings.retry_after_s) from exc
        log.warning("usage of failed request %s not recorded: %s", ticket.request_id, exc)
    finally:
        if ticket.decision.reservation is not None:
            await services.limiter.finish(ticket.decision.reservation, prompt + completion)
