"""Real `visiongate serve` processes for the HTTP-level limit tests, on two stacks.

``sqlite``: the embedded default, SQLite and the in-process limiter, one worker.
``postgresql``: a fresh PostgreSQL database and a fresh Redis key prefix for this run,
``--workers 2``.

Per stack, two gateways on the same database: ``first`` starts on the empty database (so
it creates the ``default`` organisation and prints its key), then every organisation in
ORGS is provisioned, then ``gateway`` starts (a second start: it prints no key). Both
share the session's Triton. Everything is removed afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.db.engine import create_engine
from gateway.settings import Settings
from gateway.triton_process import EmbeddedTriton
from tests.support.processes import default_key
from tests.support.services import (
    delete_prefix,
    drop_postgres_database,
    postgres_database,
    require_redis,
    unique_prefix,
)
from tests.support.stack import STACKS, Stack, provision


@pytest.fixture(scope="package")
async def redis_url() -> str:
    """The shared test Redis; fails with a clear message when it is not running."""
    return await require_redis()


@pytest.fixture(scope="package", params=STACKS)
async def stack(
    request: pytest.FixtureRequest,
    triton: EmbeddedTriton,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """A stack with its two gateways and ORGS provisioned; removed afterwards."""
    name: str = request.param
    logs = tmp_path_factory.mktemp(f"limits-http-{name}")
    env = {"VISIONGATE_TRITON_URL": triton.http_url}
    database = prefix = None
    if name == "sqlite":
        env |= {"VISIONGATE_DATABASE_URL": f"sqlite+aiosqlite:///{logs / 'visiongate.db'}"}
        env |= {"VISIONGATE_REDIS_URL": ""}
    else:
        database, url = await postgres_database()
        prefix = unique_prefix()
        env |= {"VISIONGATE_DATABASE_URL": url, "VISIONGATE_REDIS_URL": redis_url}
        env |= {"VISIONGATE_REDIS_KEY_PREFIX": prefix}
    engine = create_engine(Settings(), env["VISIONGATE_DATABASE_URL"])
    stack = Stack(name, env, engine, logs)
    try:
        stack.first = stack.start("first")
        stack.default_key = default_key(stack.first) or ""
        stack.keys = await provision(engine)
        workers = "2" if name == "postgresql" else "1"
        stack.gateway = stack.start("second", VISIONGATE_WORKERS=workers)
        yield stack
    finally:
        for gateway in stack.started:
            gateway.stop()
        await engine.dispose()
        if database is not None:
            await drop_postgres_database(database)
        if prefix is not None:
            await delete_prefix(redis_url, prefix)
