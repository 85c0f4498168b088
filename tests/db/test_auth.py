"""API keys: format, hashed storage, one 401 for every bad key, a cache with bounded staleness."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.auth import Authenticator, InvalidApiKey
from gateway.auth.keys import KEY_PREFIX, generate_key
from gateway.db.models import ApiKey
from gateway.db.revision import RevisionWatcher
from gateway.settings import Settings
from tests.support.database import new_key, revoke, statements


@pytest.fixture
async def auth(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Authenticator]:
    """An authenticator whose watcher is polled by hand (no background task)."""
    settings = Settings()
    watcher = RevisionWatcher(sessions, settings.config_poll_interval_s)
    authenticator = Authenticator(sessions, watcher, settings)
    await watcher.poll()
    yield authenticator
    await authenticator.close()


def test_key_format() -> None:
    keys = {generate_key("secret").secret for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert key.startswith(KEY_PREFIX)
        assert len(key) == 46 and key[3:].isalnum()


async def test_only_an_hmac_of_the_key_is_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    created = await new_key(sessions)
    async with sessions() as session:
        row = (await session.scalars(select(ApiKey))).one()
    server_secret = Settings().key_secret.get_secret_value().encode()
    expected = hmac.new(server_secret, created.secret.encode(), hashlib.sha256).hexdigest()
    assert row.secret_hash == expected
    assert created.secret[len(row.prefix) :] not in row.secret_hash
    assert created.secret.startswith(row.prefix)


async def test_valid_key_gives_its_organisation(
    auth: Authenticator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await new_key(sessions, org="acme", tier="developer")
    principal = await auth.authenticate(f"Bearer {created.secret}")
    assert (principal.org_name, principal.tier, principal.key_id) == (
        "acme",
        "developer",
        created.key.id,
    )


async def test_every_bad_key_gets_the_same_error(
    auth: Authenticator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    revoked = await new_key(sessions)
    await revoke(sessions, revoked.key.id)
    expired = await new_key(sessions, expires_in=timedelta(seconds=-1))
    unknown = generate_key("another-server-secret").secret
    bodies = []
    for header in (
        None,
        "",
        "Bearer",
        "Basic abc",
        "Bearer not-a-key",
        f"Bearer {unknown}",
        f"Bearer {revoked.secret}",
        f"Bearer {expired.secret}",
    ):
        with pytest.raises(InvalidApiKey) as caught:
            await auth.authenticate(header)
        bodies.append((caught.value.status_code, caught.value.body()))
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0][0] == 401
    assert bodies[0][1]["error"]["code"] == "invalid_api_key"


async def test_hot_path_makes_no_database_round_trip(
    auth: Authenticator, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    created = await new_key(sessions)
    await auth.authenticate(f"Bearer {created.secret}")
    seen = statements(engine)
    for _ in range(200):
        await auth.authenticate(f"Bearer {created.secret}")
    assert seen == []


async def test_expiry_takes_effect_without_a_lookup(
    auth: Authenticator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await new_key(sessions, expires_in=timedelta(seconds=1))
    await auth.authenticate(f"Bearer {created.secret}")
    await asyncio.sleep(1.05)
    with pytest.raises(InvalidApiKey):
        await auth.authenticate(f"Bearer {created.secret}")


async def test_revocation_is_seen_after_the_next_poll(
    auth: Authenticator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await new_key(sessions)
    await auth.authenticate(f"Bearer {created.secret}")
    await revoke(sessions, created.key.id)
    await auth._watcher.poll()
    with pytest.raises(InvalidApiKey):
        await auth.authenticate(f"Bearer {created.secret}")


async def test_a_key_tried_before_it_existed_works_once_created(
    auth: Authenticator, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A key is negatively cached when unknown; creating any key moves the revision.
    first = await new_key(sessions)
    await revoke(sessions, first.key.id)
    await auth._watcher.poll()
    with pytest.raises(InvalidApiKey):
        await auth.authenticate(f"Bearer {first.secret}")
    second = await new_key(sessions)
    await auth._watcher.poll()
    assert (await auth.authenticate(f"Bearer {second.secret}")).key_id == second.key.id


async def test_last_used_is_written_in_batches(
    auth: Authenticator, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    created = await new_key(sessions)
    for _ in range(20):
        await auth.authenticate(f"Bearer {created.secret}")
    async with sessions() as session:
        assert (await session.get(ApiKey, created.key.id)).last_used_at is None  # type: ignore[union-attr]
    seen = statements(engine)
    await auth.last_used.flush()
    assert len([s for s in seen if s.lstrip().upper().startswith("UPDATE")]) == 1
    async with sessions() as session:
        assert (await session.get(ApiKey, created.key.id)).last_used_at is not None  # type: ignore[union-attr]


WORKER = """
import asyncio, sys, time
from gateway.auth import Authenticator, InvalidApiKey
from gateway.db.engine import create_engine, session_factory
from gateway.db.revision import RevisionWatcher
from gateway.settings import Settings

async def main(url, secret):
    settings = Settings()
    engine = create_engine(settings, url)
    sessions = session_factory(engine)
    watcher = RevisionWatcher(sessions, settings.config_poll_interval_s)
    auth = Authenticator(sessions, watcher, settings)
    await watcher.start()
    await auth.authenticate("Bearer " + secret)
    print("ready", flush=True)
    while True:
        try:
            await auth.authenticate("Bearer " + secret)
        except InvalidApiKey:
            print("refused", time.time(), flush=True)
            break
        await asyncio.sleep(0.01)
    await watcher.close()
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_revocation_reaches_another_worker_within_a_second(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await new_key(sessions)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        database_url,
        created.secret,
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    assert worker.stdout is not None
    try:
        line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
        assert line.strip() == b"ready"
        await asyncio.sleep(0.3)  # let it serve from its cache for a while
        revoked_at = time.time()
        await revoke(sessions, created.key.id)
        line = await asyncio.wait_for(worker.stdout.readline(), timeout=10)
        word, when = line.split()
        assert word == b"refused"
        assert float(when) - revoked_at < 1.0
    finally:
        if worker.returncode is None:
            worker.kill()
        await worker.wait()
