"""Usage records at chosen times, written the way the gateway writes them (UsageRecorder);
the usage tests' organisations and keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.admin import service
from gateway.db.engine import session_factory
from gateway.settings import Settings
from gateway.usage import Usage, UsageRecorder


def usage_at(
    org_id: int,
    key_id: int | None,
    at: float,
    model: str = "vlm",
    prompt: int = 10,
    completion: int = 5,
    images: int = 0,
    video_frames: int = 0,
) -> Usage:
    """One finished request that started at Unix time ``at``."""
    return Usage(
        request_id=uuid.uuid4().hex,
        org_id=org_id,
        key_id=key_id,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        images=images,
        video_frames=video_frames,
        status="ok",
        started_at=datetime.fromtimestamp(at, UTC),
        first_token_ms=1.0,
        duration_ms=2.0,
    )


async def record_all(sessions: async_sessionmaker[AsyncSession], usages: Iterable[Usage]) -> None:
    """Commit the records through the gateway's own recorder."""
    recorder = UsageRecorder(sessions, Settings())
    recorder.start()
    try:
        for usage in usages:
            await recorder.record(usage)
    finally:
        await recorder.close()


# The usage tests' organisations, each on a tier of the same name with these limits (`*`).
USAGE_ORGS: dict[str, dict[str, int]] = {
    "us-chat": {"rpd": 1_000, "tpm": 100_000},
    "us-history": {"rpd": 1_000},
    "us-other": {"rpd": 1_000},
    "us-unlimited": {},
    "us-limits": {
        "rpm": 5,
        "rpd": 500,
        "tpm": 6_000,
        "tpd": 900_000,
        "concurrency": 3,
        "monthly_tokens": 5_000_000,
    },
}


@dataclass(frozen=True, slots=True)
class Provisioned:
    """An organisation the usage tests made: its id and its keys (id and secret)."""

    org_id: int
    keys: list[tuple[int, str]]


async def provision_usage(engine: AsyncEngine, keys_per_org: int = 2) -> dict[str, Provisioned]:
    """Every USAGE_ORGS organisation on its tier, with ``keys_per_org`` keys each."""
    secret = Settings().key_secret.get_secret_value()
    made: dict[str, Provisioned] = {}
    async with session_factory(engine)() as session, session.begin():
        for org, limits in USAGE_ORGS.items():
            await service.set_tier_limits(session, org, "*", dict(limits))
            created = await service.create_organisation(session, org, org)
            keys = []
            for index in range(keys_per_org):
                key = await service.create_key(session, secret, org, f"usage-{index}")
                keys.append((key.key.id, key.secret))
            made[org] = Provisioned(created.id, keys)
    return made
