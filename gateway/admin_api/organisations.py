"""``/admin/v1/organizations``: create, list, get, change tier, delete."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, delete, get, patch, post
from litestar.params import FromPath, JSONBody, Parameter

from gateway.admin import service
from gateway.admin_api import objects
from gateway.admin_api.auth import sessions
from gateway.admin_api.bodies import strict
from gateway.admin_api.lists import DEFAULT_LIMIT, PageLimit, split_page

Force = Annotated[bool, Parameter(description="also revoke the organisation's active keys")]
After = Annotated[int | None, Parameter(description="the id of the last organisation seen")]


class OrganisationsController(Controller):
    """Organisations: who keys belong to and what limits and usage count against."""

    path = "/organizations"
    tags = ("organizations",)

    @post("/")
    async def create(
        self,
        request: Request,
        data: JSONBody[objects.CreateOrganization],
    ) -> objects.Organization:
        """Create an organisation on a tier (default ``free``)."""
        data = await strict(request, data)
        async with sessions(request)() as session, session.begin():
            org = await service.create_organisation(session, data.name, data.tier)
        return objects.organization(org, 0)

    @get("/")
    async def list_organizations(
        self,
        request: Request,
        limit: PageLimit = DEFAULT_LIMIT,
        after: After = None,
    ) -> objects.OrganizationList:
        """Organisations by id (deleted ones are not listed)."""
        async with sessions(request)() as session:
            rows = await service.list_organisations(session, service.Page(limit, after))
        page, more = split_page(rows, limit)
        data = [objects.organization(org, keys) for org, keys in page]
        return objects.OrganizationList(
            data, data[0].id if data else None, data[-1].id if data else None, more
        )

    @get("/{name:str}")
    async def retrieve(self, request: Request, name: FromPath[str]) -> objects.Organization:
        """One organisation."""
        async with sessions(request)() as session:
            org = await service.organisation(session, name)
            keys = await service.active_key_count(session, org)
        return objects.organization(org, keys)

    @patch("/{name:str}")
    async def update(
        self,
        request: Request,
        name: FromPath[str],
        data: JSONBody[objects.UpdateOrganization],
    ) -> objects.Organization:
        """Move an organisation to another tier; every worker applies it within a second."""
        data = await strict(request, data)
        async with sessions(request)() as session, session.begin():
            org = await service.set_organisation_tier(session, name, data.tier)
            keys = await service.active_key_count(session, org)
        return objects.organization(org, keys)

    @delete("/{name:str}", status_code=200)
    async def remove(
        self,
        request: Request,
        name: FromPath[str],
        force: Force = False,
    ) -> objects.OrganizationDeleted:
        """Delete an organisation: refused (409) while it has active keys unless ``force=true``,
        which revokes them. Its usage is kept for billing; its name is not reused."""
        async with sessions(request)() as session, session.begin():
            org, revoked = await service.delete_organisation(session, name, force=force)
        return objects.OrganizationDeleted(org.id, org.name, revoked)
