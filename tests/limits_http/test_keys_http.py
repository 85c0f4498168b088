"""Keys end to end: the first start's default key, the CLI's key lifecycle seen by the SDK,
one 401 for every refused key, and revocation reaching every gateway process within 1 s."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import httpx
import openai
import pytest

from gateway.admin import service
from gateway.db.engine import session_factory
from gateway.settings import Settings
from tests.support.chat import MODEL, chat
from tests.support.processes import GatewayProcess, default_key
from tests.support.stack import KEY, Stack

INVALID_KEY = {
    "error": {
        "message": "Invalid API Key",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


async def completion_status(stack: Stack, key: str, gateway: GatewayProcess) -> int:
    """The status of one tiny chat completion through the OpenAI SDK."""
    async with stack.openai(key, gateway) as client:
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1
            )
        except openai.APIStatusError as exc:
            return exc.status_code
        return raw.http_response.status_code


async def wait_refused(stack: Stack, key: str, gateway: GatewayProcess, timeout_s: float) -> float:
    """Seconds until ``key`` gets 401 from ``gateway``."""
    start = time.monotonic()
    while (status := await completion_status(stack, key, gateway)) != 401:
        assert status == 200, status
        assert time.monotonic() - start < timeout_s, f"key still accepted after {timeout_s} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_serve_on_an_empty_database_prints_a_default_key_once(stack: Stack) -> None:
    assert stack.first is not None
    assert KEY.fullmatch(stack.default_key), stack.first.log_tail()
    assert default_key(stack.main) is None, "the second start printed a key again"
    [org] = [org for org in stack.cli_json("orgs", "list") if org["name"] == "default"]
    assert (org["tier"], org["active_keys"]) == ("free", 1)

    async with stack.openai(stack.default_key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1
        )
    assert raw.parse().choices[0].message.content is not None
    # The free tier's limits (docs/admin.md): 1,000 requests per day, 30,000 tokens per minute.
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    assert raw.headers["x-ratelimit-limit-tokens"] == "30000"


async def test_key_lifecycle_through_the_cli_and_the_sdk(stack: Stack) -> None:
    assert stack.first is not None
    gateways = (stack.first, stack.main)
    stack.cli("tiers", "set", "lh-life", "--model", "*", "--rpd", "100", "--tpm", "50000")
    stack.cli("orgs", "create", "acme", "--tier", "lh-life")
    created = stack.cli_json("keys", "create", "--org", "acme", "--name", "ci")
    expiring = stack.cli_json("keys", "create", "--org", "acme", "--expires-in", "1s")

    for gateway in gateways:
        async with stack.openai(created["secret"], gateway) as client:
            raw = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1
            )
        assert raw.http_response.status_code == 200
        assert raw.headers["x-ratelimit-limit-requests"] == "100"  # the new tier's limits

    # Rotation: the new secret works at once, the old one is refused (within a second).
    rotated = stack.cli_json("keys", "rotate", created["prefix"])
    assert rotated["label"] == "ci" and rotated["secret"] != created["secret"]
    for gateway in gateways:
        assert await completion_status(stack, rotated["secret"], gateway) == 200
        assert await wait_refused(stack, created["secret"], gateway, 1.0) < 1.0

    # Expiry is checked against the clock on every request.
    await wait_refused(stack, expiring["secret"], stack.main, 3.0)

    states = {key["id"]: key["state"] for key in stack.cli_json("keys", "list", "--org", "acme")}
    assert states == {
        created["id"]: "revoked",
        rotated["id"]: "active",
        expiring["id"]: "expired",
    }


async def watch_key(http: httpx.AsyncClient, stop_at: list[float]) -> tuple[float, int]:
    """Poll with fresh connections (any worker) until ``stop_at[0]`` (wall clock).

    Returns the wall time of the last 200 and how many 401s followed it.
    """
    last_ok, refused = 0.0, 0
    while time.time() < stop_at[0]:
        response = await http.get("/v1/models", headers={"connection": "close"})
        if response.status_code == 200:
            last_ok, refused = time.time(), 0
        else:
            assert response.status_code == 401, response.text
            refused += 1
        await asyncio.sleep(0.01)
    return last_ok, refused


async def test_revocation_reaches_every_gateway_process_within_a_second(stack: Stack) -> None:
    assert stack.first is not None
    secret = Settings().key_secret.get_secret_value()
    async with session_factory(stack.engine)() as session, session.begin():
        created = await service.create_key(session, secret, "lh-headers", "to revoke")
    # Both gateway processes (and, on PostgreSQL, both workers of the second) use the key,
    # so it sits in their caches; then the CLI revokes it while they keep being asked.
    stop_at = [float("inf")]
    clients = [stack.http(created.secret, gateway) for gateway in (stack.first, stack.main)]
    try:
        watchers = [asyncio.create_task(watch_key(http, stop_at)) for http in clients]
        await asyncio.sleep(0.3)
        revoked = await asyncio.to_thread(stack.cli_json, "keys", "revoke", created.key.prefix)
        # revoked_at is stamped before the commit: measuring from it errs against us.
        revoked_at = datetime.fromisoformat(revoked["revoked_at"]).timestamp()
        stop_at[0] = revoked_at + 1.5
        results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=30)
    finally:
        for http in clients:
            await http.aclose()
    for last_ok, refused in results:
        assert last_ok > 0, "the key never worked"
        assert last_ok - revoked_at < 1.0, f"accepted {last_ok - revoked_at:.2f} s after revoking"
        assert refused >= 10


async def test_every_refused_key_gets_the_same_401(stack: Stack) -> None:
    secret = Settings().key_secret.get_secret_value()
    async with session_factory(stack.engine)() as session, session.begin():
        revoked = await service.create_key(session, secret, "lh-headers", "revoked")
        await service.revoke_key(session, str(revoked.key.id))
        expired = await service.create_key(
            session, secret, "lh-headers", "expired", timedelta(seconds=-1)
        )
    unknown = "vg_" + "x" * 43
    headers: list[dict[str, str]] = [
        {},
        {"authorization": "Bearer nope"},
        {"authorization": f"Basic {unknown}"},
        {"authorization": f"Bearer {unknown}"},
        {"authorization": f"Bearer {revoked.secret}"},
        {"authorization": f"Bearer {expired.secret}"},
    ]
    async with stack.http(None) as http:
        for header in headers:
            for path in ("/v1/chat/completions", "/openai/v1/chat/completions"):
                response = await http.post(path, json=chat(), headers=header)
                assert response.status_code == 401, (header, response.text)
                assert response.json() == INVALID_KEY
                assert not any(name.startswith("x-ratelimit") for name in response.headers)

    async with stack.openai(revoked.secret) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1
            )
    assert caught.value.code == "invalid_api_key"
