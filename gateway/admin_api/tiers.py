"""``/admin/v1/tiers``: tiers and their limits per model."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody, Parameter

from gateway.admin import service
from gateway.admin_api import objects
from gateway.admin_api.auth import sessions
from gateway.admin_api.bodies import strict
from gateway.admin_api.lists import DEFAULT_LIMIT, PageLimit, split_page

After = Annotated[str | None, Parameter(description="the name of the last tier seen")]


class TiersController(Controller):
    """Tiers: named bundles of limits per model."""

    path = "/tiers"
    tags = ("tiers",)

    @get("/")
    async def list_tiers(
        self,
        request: Request,
        limit: PageLimit = DEFAULT_LIMIT,
        after: After = None,
    ) -> objects.TierList:
        """Tiers by name, each with its limits."""
        async with sessions(request)() as session:
            rows = await service.list_tiers(session, service.Page(limit, after))
        page, more = split_page(rows, limit)
        data = [objects.tier(row) for row in page]
        return objects.TierList(
            data, data[0].id if data else None, data[-1].id if data else None, more
        )

    @get("/{name:str}")
    async def retrieve(self, request: Request, name: FromPath[str]) -> objects.Tier:
        """One tier."""
        async with sessions(request)() as session:
            return objects.tier(await service.tier(session, name))

    @post("/{name:str}/limits", status_code=200)
    async def set_limits(
        self,
        request: Request,
        name: FromPath[str],
        data: JSONBody[objects.SetLimits],
    ) -> objects.Tier:
        """Set limits of a tier for one model, creating either; limits left out are unchanged,
        null ones unlimited. Every worker applies them within a second."""
        data = await strict(request, data)
        async with sessions(request)() as session, session.begin():
            await service.set_tier_limits(session, name, data.model, data.changes())
        async with sessions(request)() as session:
            return objects.tier(await service.tier(session, name))
