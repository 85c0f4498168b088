"""API keys: ``/admin/v1/organizations/{name}/keys`` and ``/admin/v1/keys/{id}``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody, Parameter

from gateway.admin import service
from gateway.admin_api import objects
from gateway.admin_api.auth import services, sessions
from gateway.admin_api.bodies import strict
from gateway.admin_api.lists import DEFAULT_LIMIT, PageLimit, split_page

After = Annotated[int | None, Parameter(description="the id of the last key seen")]


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _server_secret(request: Request) -> str:
    return services(request).settings.key_secret.get_secret_value()


class KeysController(Controller):
    """API keys: created with their secret shown once, listed by prefix, revoked, rotated."""

    tags = ("keys",)

    @post("/organizations/{name:str}/keys")
    async def create(
        self,
        request: Request,
        name: FromPath[str],
        data: JSONBody[objects.CreateKey],
    ) -> objects.NewApiKey:
        """Create a key; the response is the only place its secret ever appears."""
        data = await strict(request, data)
        async with sessions(request)() as session, session.begin():
            created = await service.create_key(
                session, _server_secret(request), name, data.name, _seconds(data.expires_in)
            )
        return objects.new_api_key(created)

    @get("/organizations/{name:str}/keys")
    async def list_keys(
        self,
        request: Request,
        name: FromPath[str],
        limit: PageLimit = DEFAULT_LIMIT,
        after: After = None,
    ) -> objects.ApiKeyList:
        """An organisation's keys by id, each with its ``state`` (active, expired, revoked)."""
        async with sessions(request)() as session:
            rows = await service.list_keys(session, name, service.Page(limit, after))
        page, more = split_page(rows, limit)
        data = [objects.api_key(key, org) for key, org in page]
        return objects.ApiKeyList(
            data, data[0].id if data else None, data[-1].id if data else None, more
        )

    @get("/keys/{key_id:int}")
    async def retrieve(self, request: Request, key_id: FromPath[int]) -> objects.ApiKey:
        """One key."""
        async with sessions(request)() as session:
            key, org = await service.key_by_id(session, key_id)
        return objects.api_key(key, org)

    @post("/keys/{key_id:int}/revoke", status_code=200)
    async def revoke(self, request: Request, key_id: FromPath[int]) -> objects.ApiKey:
        """Revoke a key; every worker refuses it within a second. Revoking twice is harmless."""
        async with sessions(request)() as session, session.begin():
            key = await service.revoke_key(session, str(key_id))
            _, org = await service.key_by_id(session, key.id)
        return objects.api_key(key, org)

    @post("/keys/{key_id:int}/rotate", status_code=200)
    async def rotate(
        self,
        request: Request,
        key_id: FromPath[int],
        data: JSONBody[objects.RotateKey | None] = None,
    ) -> objects.KeyRotation:
        """Replace a key with a new one (same organisation and name). The old key is revoked
        at once, or with ``grace_period`` (seconds) stays valid that much longer."""
        data = await strict(request, data) if data else objects.RotateKey()
        async with sessions(request)() as session, session.begin():
            old, created = await service.rotate_key(
                session,
                _server_secret(request),
                str(key_id),
                _seconds(data.grace_period),
                _seconds(data.expires_in),
            )
        return objects.KeyRotation(
            objects.new_api_key(created), objects.api_key(old, created.organisation)
        )
