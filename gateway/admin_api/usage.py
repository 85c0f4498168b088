"""Usage for operators: time-bucketed, per organisation or across all, as JSON or CSV.

The same query parameters and page shape as the customers' ``/v1/organization/usage``
(gateway/api/usage_params.py); here ``group_by`` also takes ``organization``, and the CSV
export holds every bucket of the range in one response (no pages).
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Controller, Request, Response, get
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin import service
from gateway.admin_api.auth import services
from gateway.api.admission import DATABASE_ERRORS
from gateway.api.services import Services
from gateway.api.usage_params import usage_query
from gateway.errors import DatabaseUnavailable
from gateway.usage.buckets import GroupField, UsagePage, UsageQuery, bucket_totals, usage_page
from gateway.usage.export import usage_csv

ADMIN_GROUPS: tuple[GroupField, ...] = ("model", "api_key_id", "organization")


def _query(name: str, kind: OpenAPIType, description: str, required: bool = False) -> Parameter:
    items = Schema(type=OpenAPIType.STRING) if kind == OpenAPIType.ARRAY else None
    return Parameter(
        name=name,
        param_in="query",
        schema=Schema(type=kind, items=items),
        description=description,
        required=required,
    )


# The query parameters, read by gateway/api/usage_params.py (not Litestar), for the schema.
USAGE_PARAMETERS = [
    _query("start_time", OpenAPIType.INTEGER, "Unix seconds, inclusive", required=True),
    _query("end_time", OpenAPIType.INTEGER, "Unix seconds, exclusive (default: now's bucket)"),
    _query("bucket_width", OpenAPIType.STRING, "1m, 1h or 1d (default)"),
    _query("group_by", OpenAPIType.ARRAY, "model, api_key_id, organization"),
    _query("models", OpenAPIType.ARRAY, "only these models"),
    _query("api_key_ids", OpenAPIType.ARRAY, "only these keys (key_12)"),
    _query(
        "limit",
        OpenAPIType.INTEGER,
        "buckets per page (1d: 7, at most 31; 1h: 24/168; 1m: 60/1440)",
    ),
    _query("page", OpenAPIType.STRING, "the previous page's next_page"),
]


@dataclass
class UsageOperation(Operation):
    """The schema of a usage route: its operation plus the usage query parameters."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), *USAGE_PARAMETERS]


async def _org_id(session: AsyncSession, name: str | None) -> int | None:
    """The organisation's id (deleted ones too: their usage is kept), or None for all."""
    if name is None:
        return None
    return (await service.organisation(session, name, include_deleted=True)).id


async def _page(found: Services, request: Request, name: str | None) -> UsagePage:
    try:
        async with found.sessions() as session:
            query = usage_query(request.query_params, await _org_id(session, name), ADMIN_GROUPS)
            return await usage_page(session, query)
    except DATABASE_ERRORS as exc:
        raise DatabaseUnavailable(retry_after_s=found.settings.retry_after_s) from exc


async def _csv(found: Services, request: Request, name: str | None) -> Response[str]:
    try:
        async with found.sessions() as session:
            query: UsageQuery = usage_query(
                request.query_params, await _org_id(session, name), ADMIN_GROUPS
            )
            buckets = await bucket_totals(session, query, query.all_buckets())
    except DATABASE_ERRORS as exc:
        raise DatabaseUnavailable(retry_after_s=found.settings.retry_after_s) from exc
    filename = f"usage-{name or 'all'}-{query.start_time}-{query.end_time}.csv"
    return Response(
        usage_csv(buckets),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


class UsageAdminController(Controller):
    """Usage buckets (OpenAI's usage-API shape) of one organisation or of all, and CSV."""

    tags = ("usage",)

    @get("/organizations/{name:str}/usage", operation_class=UsageOperation)
    async def organization_usage(self, request: Request, name: str) -> UsagePage:
        """One organisation's usage in time buckets (``start_time`` required; paginated)."""
        return await _page(services(request), request, name)

    @get(
        "/organizations/{name:str}/usage.csv", media_type="text/csv", operation_class=UsageOperation
    )
    async def organization_usage_csv(self, request: Request, name: str) -> Response[str]:
        """One organisation's usage as CSV: a row per bucket and group, the whole range."""
        return await _csv(services(request), request, name)

    @get("/usage", operation_class=UsageOperation)
    async def usage(self, request: Request, organization: str | None = None) -> UsagePage:
        """Usage of every organisation, or of ``organization``; ``group_by`` may name it."""
        return await _page(services(request), request, organization)

    @get("/usage.csv", media_type="text/csv", operation_class=UsageOperation)
    async def usage_csv(self, request: Request, organization: str | None = None) -> Response[str]:
        """Usage of every organisation (or of ``organization``) as CSV, the whole range."""
        return await _csv(services(request), request, organization)
