"""The gateway app in-process: a migrated SQLite database, keys, and raw ASGI calls.

:func:`prepared_database` migrates a database and makes one organisation and key per tier
the tests use; :class:`Api` is one app with its test client, scripted backend and keys;
:func:`chat` and :func:`sse_events` build a request and read an SSE body;
:func:`call` sends one request straight to the ASGI app with a ``receive`` that reports the
client leaving when the test says so (the test client's transport only reports it after the
response).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from gateway.admin import service
from gateway.db import migrate
from gateway.db.engine import create_engine, session_factory
from gateway.db.models import UsageRecord
from gateway.settings import Settings
from tests.support.backend import ScriptedBackend
from tests.support.chat import MODEL

T = TypeVar("T")
# The "tight" tier: one request at a time, 2,000 tokens a minute, for every model.
TIGHT = {"concurrency": 1, "tpm": 2_000}


def chat(**extra: Any) -> dict[str, Any]:
    """A one-message chat request."""
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **extra}


def sse_events(text: str) -> list[Any]:
    """The data of each SSE event, JSON-decoded ([DONE] as is)."""
    events = []
    for block in text.split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            data = block[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def _make_keys(url: str) -> dict[str, str]:
    engine = create_engine(Settings(), url)
    sessions = session_factory(engine)
    keys = {}
    try:
        async with sessions() as session, session.begin():
            await service.set_tier_limits(session, "tight", "*", dict(TIGHT))
            secret = Settings().key_secret.get_secret_value()
            for tier in ("enterprise", "tight"):
                await service.create_organisation(session, f"api-{tier}", tier)
                created = await service.create_key(session, secret, f"api-{tier}", "t", None)
                keys[tier] = created.secret
    finally:
        await engine.dispose()
    return keys


def prepared_database(url: str) -> dict[str, str]:
    """Migrate the database at ``url``; a key per tier (``enterprise``, ``tight``)."""
    migrate.upgrade(Settings(), "head", url)
    return asyncio.run(_make_keys(url))


async def usage_rows(url: str, request_id: str) -> list[UsageRecord]:
    """The usage records of one request."""
    engine = create_engine(Settings(), url)
    try:
        async with session_factory(engine)() as session:
            query = select(UsageRecord).where(UsageRecord.request_id == request_id)
            return list((await session.scalars(query)).all())
    finally:
        await engine.dispose()


@dataclass
class Api:
    """One app, its client, its backend and its database."""

    app: Litestar
    client: AsyncTestClient[Litestar]
    backend: ScriptedBackend
    database_url: str
    keys: dict[str, str]

    def auth(self, tier: str = "enterprise") -> dict[str, str]:
        """The Authorization header of the tier's key."""
        return {"authorization": f"Bearer {self.keys[tier]}"}

    async def post_elsewhere(self, body: dict[str, Any], tier: str) -> httpx.Response:
        """POST a chat from another thread, so that this loop stays free meanwhile.

        The test client's calls block the calling loop until the app (on its own loop, in
        a thread) has answered.
        """

        def post() -> httpx.Response:
            async def one() -> httpx.Response:
                url = "/v1/chat/completions"
                return await self.client.post(url, json=body, headers=self.auth(tier))

            return asyncio.run(one())

        return await asyncio.to_thread(post)

    async def in_app_loop(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` on the app's own loop (raw ASGI calls need its services)."""
        return await asyncio.to_thread(self.client.blocking_portal.call, work)


@dataclass
class Sent:
    """What the app sent for one raw request."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


async def call(
    app: Litestar,
    body: bytes,
    key: str,
    *,
    leave: Callable[[], Awaitable[None]],
    path: str = "/v1/chat/completions",
) -> Sent:
    """POST ``body`` to the app; the client leaves once ``leave()`` returns."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = Sent()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await leave()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.status = message["status"]
            sent.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            sent.body += message.get("body", b"")

    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent
