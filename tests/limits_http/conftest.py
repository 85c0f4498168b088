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

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import service
from gateway.db.engine import create_engine, session_factory
from gateway.db.models import ApiKey, Organisation, UsageRecord
from gateway.settings import Settings
from inference.launcher import EmbeddedTriton
from tests.conftest import GatewayProcess, start_gateway, visiongate
from tests.db.services import (
    delete_prefix,
    drop_postgres_database,
    postgres_database,
    require_redis,
    unique_prefix,
)

MODEL = "visiongate/tiny-random-llava"
STACKS = ("sqlite", "postgresql")
DEFAULT_KEY_BANNER = "visiongate: created organisation 'default'"
KEY = re.compile(r"vg_[0-9A-Za-z]{43}")

# One organisation per test that needs limits of its own; its tier (same name) has these
# limits for every model (`*`), the rest unlimited.
ORGS: dict[str, dict[str, int]] = {
    "lh-headers": {"rpd": 1_000, "tpm": 100_000},
    "lh-usage": {"rpd": 1_000, "tpm": 100_000},
    "lh-final": {"rpd": 1_000, "tpm": 100_000},
    "lh-drain": {"rpd": 1_000, "tpm": 100_000},
    "lh-reserve": {"rpd": 1_000, "tpm": 2_000},
    "lh-rpm": {"rpm": 2, "rpd": 1_000, "tpm": 100_000},
    "lh-rpd": {"rpd": 2, "tpm": 100_000},
    "lh-tpm": {"rpd": 1_000, "tpm": 1_000},
    "lh-tpd": {"rpd": 1_000, "tpd": 1_000},
    "lh-quota": {"monthly_tokens": 1_000},
    "lh-concurrency": {"rpd": 1_000, "tpm": 100_000, "concurrency": 2},
    "lh-contention": {"rpm": 20},
    "lh-lease": {"concurrency": 1},
    "lh-redis": {"rpm": 3, "rpd": 1_000},
    "lh-prefill": {"rpd": 1_000, "tpm": 100_000},
    "lh-unset-max": {"tpm": 1_100},
    "lh-unset-max-fits": {"tpm": 5_000},
}


@dataclass
class Stack:
    """One configuration: its settings, its database, its gateways and keys."""

    name: str
    env: dict[str, str]
    engine: AsyncEngine
    logs: Path
    first: GatewayProcess | None = None
    gateway: GatewayProcess | None = None
    default_key: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    started: list[GatewayProcess] = field(default_factory=list)

    @property
    def main(self) -> GatewayProcess:
        """The gateway most tests talk to (the second start; two workers on PostgreSQL)."""
        assert self.gateway is not None
        return self.gateway

    def cli(self, *args: str) -> str:
        """The `visiongate` CLI on this stack's database."""
        return visiongate(*args, env=self.env)

    def cli_json(self, *args: str) -> Any:
        """A CLI command's ``--json`` output."""
        return json.loads(self.cli(*args, "--json"))

    def start(self, name: str, ready: bool = True, **env: str) -> GatewayProcess:
        """Another `visiongate serve` on this stack, with extra settings; stopped at the end."""
        triton_url = self.env["VISIONGATE_TRITON_URL"]
        gateway = start_gateway(
            triton_url, self.logs / f"{name}.log", "", env={**self.env, **env}, ready=ready
        )
        self.started.append(gateway)
        return gateway

    def openai(self, key: str, gateway: GatewayProcess | None = None) -> AsyncOpenAI:
        """The real OpenAI SDK against a gateway, without its automatic retries."""
        url = (gateway or self.main).url
        return AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)

    def http(self, key: str | None, gateway: GatewayProcess | None = None) -> httpx.AsyncClient:
        """A raw HTTP client (for what the SDK hides: disconnects, exact bodies)."""
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(
            base_url=(gateway or self.main).url,
            headers=headers,
            timeout=60,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

    async def usage(self, org: str) -> list[UsageRecord]:
        """The organisation's usage records, oldest first, read straight from the database."""
        async with session_factory(self.engine)() as session:
            rows = await session.scalars(
                select(UsageRecord)
                .join(Organisation, UsageRecord.org_id == Organisation.id)
                .where(Organisation.name == org)
                .order_by(UsageRecord.id)
            )
            return list(rows.all())

    async def usage_row(self, request_id: str) -> UsageRecord | None:
        """One request's usage record, if committed."""
        async with session_factory(self.engine)() as session:
            return await session.scalar(
                select(UsageRecord).where(UsageRecord.request_id == request_id)
            )

    async def key_row(self, prefix: str) -> ApiKey:
        """An API key's row."""
        async with session_factory(self.engine)() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
            assert row is not None, prefix
            return row


def default_key(gateway: GatewayProcess) -> str | None:
    """The key a gateway printed for the ``default`` organisation, if it printed one."""
    lines = gateway.log_path.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines):
        if line.startswith(DEFAULT_KEY_BANNER):
            return lines[index + 1].strip()
    return None


async def provision(engine: AsyncEngine) -> dict[str, str]:
    """Every ORGS organisation on its own tier, with one key each (what the CLI does)."""
    secret = Settings().key_secret.get_secret_value()
    keys: dict[str, str] = {}
    async with session_factory(engine)() as session, session.begin():
        for org, limits in ORGS.items():
            await service.set_tier_limits(session, org, "*", dict(limits))
            await service.create_organisation(session, org, org)
            created = await service.create_key(session, secret, org, "limits_http")
            keys[org] = created.secret
    return keys


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
    env = {"VISIONGATE_TRITON_URL": triton.grpc_url}
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


def chat(max_tokens: int = 1, content: str = "Hi", **extra: Any) -> dict[str, Any]:
    """A chat request body for the default model (greedy, so runs are repeatable)."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }


# What the default model's ChatML template adds to one user turn and the generation prompt,
# in tokens of its byte-level tokenizer (one per byte): the model measures and reports it.
CHATML_TURN_TOKENS = 19


def reserved(max_tokens: int, content: str = "Hi") -> int:
    """The tokens admission reserves for ``chat(max_tokens, content)`` (docs/admin.md).

    The default model's prompt estimate is exact for ASCII text: one token per character
    plus the template's own tokens.
    """
    return len(content) + CHATML_TURN_TOKENS + max_tokens


@dataclass
class OpenStream:
    """A streamed completion being read: the response and its event lines.

    The line iterator must stay referenced: once it is garbage-collected, httpx closes the
    response, which is a client walking away mid-stream.
    """

    response: httpx.Response
    lines: AsyncIterator[str]

    async def aclose(self) -> None:
        """Walk away: close the connection mid-stream."""
        await self.response.aclose()


async def open_stream(http: httpx.AsyncClient, body: dict[str, Any]) -> OpenStream:
    """Start a streamed completion and read its first event."""
    request = http.build_request("POST", "/v1/chat/completions", json=body)
    response = await http.send(request, stream=True)
    assert response.status_code == 200, await response.aread()
    lines = response.aiter_lines()
    async for line in lines:
        if line.startswith("data: "):
            first = json.loads(line[6:])
            assert first["choices"][0]["delta"]["role"] == "assistant"
            return OpenStream(response, lines)
    raise AssertionError("the stream ended before its first event")
