"""The stages around inference: whose key (auth), may they (limits), and what it cost (usage).

``authenticate`` runs first. :func:`admitted` is the admitted request as one async context:
entering reserves the request's estimated tokens and a concurrency slot (or refuses it);
leaving it, however it is left (an answer, an error, a cancellation, a client that went
away), finishes it exactly once: the usage record is committed, the reservation corrected
to what was really used, and the slot freed. An error raised inside carries the
rate-limit headers out with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from litestar import Request
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.disconnect import is_disconnect
from gateway.api.plan import ChatPlan
from gateway.api.rate_limits import LimiterDown, rate_limit_headers, refusal
from gateway.api.services import Services
from gateway.api.timing import Timing
from gateway.auth import InvalidApiKey, Principal
from gateway.errors import ApiError, DatabaseUnavailable
from gateway.limits import Decision, LimiterUnavailable, estimate_prompt
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


async def authenticate(services: Services, request: Request) -> Principal:
    """The organisation behind the request's bearer key."""
    try:
        return await services.auth.authenticate(request.headers.get("authorization"))
    except InvalidApiKey as exc:
        raise Unauthorized(exc.message) from None
    except DATABASE_ERRORS as exc:  # a key not in the cache needs the database
        raise DatabaseUnavailable(retry_after_s=services.settings.retry_after_s) from exc


class Admission:
    """An admitted request while it runs: what it reserved, and what it has used so far."""

    def __init__(
        self,
        principal: Principal,
        model: str,
        request_id: str,
        timing: Timing,
        decision: Decision,
        prompt_estimate: int,
        plan: ChatPlan,
    ) -> None:
        self.principal = principal
        self.model = model
        self.request_id = request_id
        self.timing = timing
        self.decision = decision
        self.headers = rate_limit_headers(decision)
        self.prompt_estimate = prompt_estimate
        self.images = plan.images
        # Before intake: the most frames the videos may become; after: the frames really sent.
        self.video_frames = plan.video_frames
        self.started_at = datetime.now(UTC)
        self._submitted = False
        self._prefill_tokens: int | None = None
        self.deltas = 0
        self.final: contract.Final | None = None

    def media_loaded(self, images: int, video_frames: int) -> None:
        """Intake is done: these are the images and frames the model gets."""
        self.images, self.video_frames = images, video_frames

    def submitted(self) -> None:
        """The request goes to the model: from now on leaving early still costs its prompt."""
        self.timing.submitted = time.perf_counter()
        self._submitted = True

    def prefill(self, event: contract.Prefill) -> None:
        """The model reported the prompt's size."""
        self._prefill_tokens = event.prompt_tokens

    def delta(self) -> None:
        """One text delta arrived."""
        self.timing.mark_first()
        self.deltas += 1

    def restarted(self) -> None:
        """The answer started again on another server: what came before does not count."""
        self.deltas = 0

    def choice_restarted(self, deltas: int) -> None:
        """One of ``n`` choices started again: its ``deltas`` so far do not count."""
        self.deltas -= deltas

    def completed(self, final: contract.Final) -> None:
        """The model finished."""
        self.timing.mark_first()
        self.timing.done = time.perf_counter()
        self.final = final

    def prompt_charged(self) -> tuple[int, bool]:
        """The prompt tokens to charge, and whether that number is the admission estimate.

        The model's final count; else its prefill report; else, once submitted, the
        estimate (the model may have taken the prompt before the client left); else 0.
        """
        if self.final is not None:
            return self.final.prompt_tokens, False
        if self._prefill_tokens is not None:
            return self._prefill_tokens, False
        return (self.prompt_estimate, True) if self._submitted else (0, False)

    def usage(self, status: str) -> Usage:
        """The usage record: the final counts, or (cancelled, failed) what was charged."""
        prompt, estimated = self.prompt_charged()
        timing = self.timing
        return Usage(
            request_id=self.request_id,
            org_id=self.principal.org_id,
            key_id=self.principal.key_id,
            model=self.model,
            prompt_tokens=prompt,
            prompt_estimated=estimated,
            completion_tokens=self.final.completion_tokens if self.final else self.deltas,
            images=self.images,
            video_frames=self.video_frames,
            status=status[:32],
            started_at=self.started_at,
            first_token_ms=None
            if timing.first is None
            else (timing.first - timing.received) * 1000,
            duration_ms=(time.perf_counter() - timing.received) * 1000,
        )


def _status(error: BaseException | None) -> str:
    """How the request ended, for its usage record."""
    if error is None:
        return "ok"
    if isinstance(error, ApiError):
        return error.code or str(error.status_code)
    if is_disconnect(error):
        return "client_closed_request"
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    return "failed"


async def _reserve(
    services: Services,
    principal: Principal,
    model: ModelEntry,
    plan: ChatPlan,
    max_tokens: int | None,
) -> tuple[Decision, int]:
    """The limiter's decision on the request's estimate, and that prompt estimate.

    The reservation is the prompt's estimate plus the completion's ceiling (``max_tokens``,
    or when the request sets none the default generation really allows) for each of the
    plan's choices: the prompt is counted once, as OpenAI bills ``n``.
    """
    settings = services.settings
    prompt = estimate_prompt(
        settings,
        model.prompt_cost,
        text_chars=plan.text_chars,
        messages=plan.message_count,
        images=plan.images,
        video_frames=plan.video_frames,
    )
    completion = max_tokens
    if completion is None:
        # What generation may really use: the default, within what the context leaves.
        completion = settings.default_max_tokens
        if model.context_length:
            completion = max(1, min(completion, model.context_length - prompt))
    try:
        limits = await services.catalog.limits(principal.tier, model.id)
        decision = await services.limiter.admit(
            principal.org_id, model.id, limits, prompt + completion * plan.choices
        )
    except DATABASE_ERRORS as exc:  # the monthly quota's baseline comes from usage records
        raise DatabaseUnavailable(retry_after_s=settings.retry_after_s) from exc
    except LimiterUnavailable as exc:
        raise LimiterDown(exc.retry_after_s) from None
    if not decision.allowed:
        raise refusal(decision, model.id, principal.org_name)
    return decision, prompt


@asynccontextmanager
async def admitted(
    services: Services,
    principal: Principal,
    model: ModelEntry,
    plan: ChatPlan,
    *,
    max_tokens: int | None,
    request_id: str,
    timing: Timing,
) -> AsyncIterator[Admission]:
    """Admit the request (or raise its refusal) for the body of an ``async with``.

    Leaving finishes it once, and a client leaving cannot interrupt that. A completed
    answer (:meth:`Admission.completed`) goes out only once its usage is committed, so
    failing to commit it is a 503; a failed or cancelled request's record is best effort.
    """
    reserving = _reserve(services, principal, model, plan, max_tokens)
    decision, prompt = await services.telemetry.stage("visiongate.limits", reserving)
    admission = Admission(principal, model.id, request_id, timing, decision, prompt, plan)
    try:
        yield admission
    except BaseException as exc:
        await asyncio.shield(_finish(services, admission, _status(exc)))
        if isinstance(exc, ApiError):
            _with_headers(exc, admission)
        raise
    if admission.final is None:
        await asyncio.shield(_finish(services, admission, "failed"))
        raise AssertionError("an admitted request ends with the model's Final or an error")
    try:
        await asyncio.shield(_finish(services, admission, "ok"))
    except ApiError as exc:
        _with_headers(exc, admission)
        raise


def _with_headers(error: ApiError, admission: Admission) -> None:
    """From admission on, every response, errors included, carries the rate-limit headers."""
    for name, value in admission.headers.items():
        error.headers.setdefault(name, value)


async def _finish(services: Services, admission: Admission, status: str) -> None:
    """Record usage and settle the limiter."""
    try:
        await services.recorder.record(admission.usage(status))
    except Exception as exc:  # the recorder already retried; the database is not answering
        if admission.final is not None and status == "ok":
            raise DatabaseUnavailable(retry_after_s=services.settings.retry_after_s) from exc
        log.warning("usage of failed request %s not recorded: %s", admission.request_id, exc)
    finally:
        if admission.decision.reservation is not None:
            prompt, _ = admission.prompt_charged()
            completion = admission.final.completion_tokens if admission.final else admission.deltas
            await services.limiter.finish(admission.decision.reservation, prompt + completion)
