"""The admin API tests' stack: one `visiongate serve --workers 2` with admin tokens.

Both configurations (SQLite and PostgreSQL) use a fresh Redis key prefix, so the two
workers share their limits and a tier change is enforced the same way by both.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.db.engine import create_engine
from gateway.settings import Settings
from tests.support.chat import chat
from tests.support.processes import GatewayProcess
from tests.support.services import (
    delete_prefix,
    drop_postgres_database,
    postgres_database,
    unique_prefix,
)
from tests.support.stack import Stack


@dataclass
class AdminStack(Stack):
    """A stack with a full and a read-only admin token."""

    token: str = ""
    read_only_token: str = ""

    def admin(self, token: str | None = None) -> httpx.AsyncClient:
        """An HTTP client for ``/admin/v1`` with an admin token (the full one by default)."""
        headers = {"authorization": f"Bearer {token or self.token}"}
        return httpx.AsyncClient(base_url=self.main.url + "/admin/v1", headers=headers, timeout=60)


@asynccontextmanager
async def admin_stack(
    name: str, triton_url: str, redis_url: str, logs: Path
) -> AsyncIterator[AdminStack]:
    """A two-worker gateway on a fresh database (``sqlite`` or ``postgresql``) and Redis prefix.

    Its admin tokens are made with the CLI; everything is removed afterwards.
    """
    database = None
    if name == "sqlite":
        url = f"sqlite+aiosqlite:///{logs / 'visiongate.db'}"
    else:
        database, url = await postgres_database()
    prefix = unique_prefix()
    env = {
        "VISIONGATE_TRITON_URL": triton_url,
        "VISIONGATE_DATABASE_URL": url,
        "VISIONGATE_REDIS_URL": redis_url,
        "VISIONGATE_REDIS_KEY_PREFIX": prefix,
    }
    engine = create_engine(Settings(), url)
    stack = AdminStack(name, env, engine, logs)
    try:
        stack.gateway = stack.start("gateway", VISIONGATE_WORKERS="2")
        wait_for_workers(stack.gateway, 2)
        stack.token = created_token(stack, "tests")["secret"]
        stack.read_only_token = created_token(stack, "tests-read", "--read-only")["secret"]
        yield stack
    finally:
        for gateway in stack.started:
            gateway.stop()
        await engine.dispose()
        if database is not None:
            await drop_postgres_database(database)
        await delete_prefix(redis_url, prefix)


def wait_for_workers(gateway: GatewayProcess, workers: int) -> None:
    """Wait until every worker logged that it is ready (readiness answers after the first)."""
    deadline = time.monotonic() + 30
    while gateway.log_path.read_text(errors="replace").count("gateway ready") < workers:
        assert time.monotonic() < deadline, f"not all workers started:\n{gateway.log_tail()}"
        time.sleep(0.05)


def created_token(stack: Stack, name: str, *flags: str) -> Any:
    """`visiongate admin-tokens create --json` on the stack's database."""
    return stack.cli_json("admin-tokens", "create", "--name", name, *flags)


async def fresh_chat(stack: Stack, key: str) -> httpx.Response:
    """One tiny chat completion on a new connection, so either worker may take it."""
    async with httpx.AsyncClient(base_url=stack.main.url, timeout=60) as http:
        return await http.post(
            "/v1/chat/completions",
            json=chat(),
            headers={"authorization": f"Bearer {key}", "connection": "close"},
        )


async def settles(
    request: Callable[[], Awaitable[httpx.Response]], status: int, streak: int, timeout_s: float
) -> float:
    """Seconds until ``request`` answers ``status`` for good: ``streak`` times in a row.

    Returns when the first of that streak was sent; fails if a request sent after
    ``timeout_s`` still answers something else.
    """
    start = time.monotonic()
    first, run = 0.0, 0
    while run < streak:
        sent = time.monotonic() - start
        response = await request()
        if response.status_code == status:
            first, run = (sent, 1) if run == 0 else (first, run + 1)
            continue
        run = 0
        assert sent < timeout_s, f"still {response.status_code} after {sent:.2f} s: {response.text}"
    return first
