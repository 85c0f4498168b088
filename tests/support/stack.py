"""The HTTP-level limit tests' stacks: settings, a database, gateways and keys.

The ``stack`` fixture (tests/limits_http/conftest.py) builds one per configuration in
STACKS; ORGS are the organisations it provisions, each on a tier of its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from openai import AsyncOpenAI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import service
from gateway.db.engine import session_factory
from gateway.db.models import ApiKey, Organisation, UsageRecord
from gateway.settings import Settings
from tests.support.processes import GatewayProcess, start_gateway, visiongate

STACKS = ("sqlite", "postgresql")
# An API key as the CLI and `serve` print it.
KEY = re.compile(r"vg_[0-9A-Za-z]{43}")

# One organisation per test that needs limits of its own; its tier (same name) has these
# limits for every model (`*`), the rest unlimited.
ORGS: dict[str, dict[str, int]] = {
    "lh-headers": {"rpd": 1_000, "tpm": 100_000},
    "lh-usage": {"rpd": 1_000, "tpm": 100_000},
    "lh-responses": {"rpd": 1_000, "tpm": 100_000},
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
    "lh-n-usage": {"rpd": 1_000, "tpm": 100_000},
    "lh-n-tokens": {"rpd": 1_000, "tpm": 2_000},
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
