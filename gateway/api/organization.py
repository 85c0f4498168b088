"""``GET /v1/organization/usage`` and ``/v1/organization/limits``: a key's own organisation.

Read-only views for customers (also under ``/openai``): usage in OpenAI's usage-API shape,
and the tier's limits per model with what is left of each now. Reading them costs no rate
limit.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, Response, get

from gateway.api.admission import DATABASE_ERRORS, authenticate
from gateway.api.rate_limits import LimiterDown
from gateway.api.services import Services
from gateway.api.usage_params import usage_query
from gateway.errors import DatabaseUnavailable
from gateway.limits import LimiterUnavailable
from gateway.limits.standing import Allowance, Standing
from gateway.usage.buckets import usage_page

_encode = msgspec.json.Encoder().encode


class LimitNow(msgspec.Struct):
    """One limit: null ``limit`` is unlimited; ``reset_seconds`` until it is full again."""

    limit: int | None
    remaining: int | None
    reset_seconds: float | None


class ModelLimits(msgspec.Struct, kw_only=True):
    """A tier's limits on one model, and what is left of each now."""

    model: str
    rpm: LimitNow
    rpd: LimitNow
    tpm: LimitNow
    tpd: LimitNow
    concurrency: LimitNow
    monthly_tokens: LimitNow
    object: str = "organization.model_limits"


class OrganizationLimits(msgspec.Struct, kw_only=True):
    """The calling key's organisation, its tier, and its limits per served model."""

    organization: str
    tier: str
    data: list[ModelLimits]
    object: str = "organization.limits"


def _now(allowance: Allowance) -> LimitNow:
    reset = None if allowance.reset_s is None else round(allowance.reset_s, 3)
    return LimitNow(allowance.limit, allowance.remaining, reset)


def _model_limits(model: str, now: Standing) -> ModelLimits:
    return ModelLimits(
        model=model,
        rpm=_now(now.rpm),
        rpd=_now(now.rpd),
        tpm=_now(now.tpm),
        tpd=_now(now.tpd),
        concurrency=_now(now.concurrency),
        monthly_tokens=_now(now.monthly_tokens),
    )


class OrganizationController(Controller):
    """The calling key's organisation: its usage and its limits."""

    @get(
        [
            "/v1/organization/usage",
            "/openai/v1/organization/usage",
            "/v1/organization/usage/completions",
            "/openai/v1/organization/usage/completions",
        ]
    )
    async def usage(self, request: Request) -> Response[bytes]:
        """Time-bucketed usage of the key's organisation (OpenAI's usage-API page)."""
        services: Services = request.app.state.services
        principal = await authenticate(services, request)
        query = usage_query(request.query_params, principal.org_id)
        try:
            async with services.sessions() as session:
                page = await usage_page(session, query)
        except DATABASE_ERRORS as exc:
            raise DatabaseUnavailable(retry_after_s=services.settings.retry_after_s) from exc
        return Response(_encode(page), media_type="application/json")

    @get(["/v1/organization/limits", "/openai/v1/organization/limits"])
    async def limits(self, request: Request) -> Response[bytes]:
        """The tier's limits on every served model, with what remains of each now."""
        services: Services = request.app.state.services
        principal = await authenticate(services, request)
        await services.registry.ensure_described()
        data: list[ModelLimits] = []
        try:
            for entry in services.registry.entries:
                limits = await services.catalog.limits(principal.tier, entry.id)
                now = await services.limiter.standing(principal.org_id, entry.id, limits)
                data.append(_model_limits(entry.id, now))
        except LimiterUnavailable as exc:
            raise LimiterDown(exc.retry_after_s) from None
        except DATABASE_ERRORS as exc:  # the monthly quota's baseline comes from usage records
            raise DatabaseUnavailable(retry_after_s=services.settings.retry_after_s) from exc
        body = OrganizationLimits(organization=principal.org_name, tier=principal.tier, data=data)
        return Response(_encode(body), media_type="application/json")
