"""Usage buckets: what one page of ``/v1/organization/usage`` costs the database.

Run: ``.venv/bin/python -m bench.usage_bench [--rows N]``. It fills a fresh SQLite file
and a fresh PostgreSQL database (``BENCH_POSTGRES_URL``, default the local server's
``postgres`` database, where it creates and drops its own) with N usage records (200,000)
of one organisation, spread over the past year across three models, then times the pages
the playground and a dashboard ask for: 7 and 30 days by day, 7 days by hour, a year's
first page by day, each grouped by model. Prints milliseconds per page; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import cast

import asyncpg
from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import service
from gateway.db import migrate
from gateway.db.engine import create_engine, session_factory
from gateway.db.models import UsageRecord
from gateway.settings import Settings
from gateway.usage.buckets import BucketWidth, UsageQuery, usage_page

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DAY = 86_400
REPEATS = 5
# (width, days back from the end of today, buckets on the page)
PAGES: tuple[tuple[BucketWidth, int, int], ...] = (
    ("1d", 7, 7),
    ("1d", 30, 30),
    ("1h", 7, 168),
    ("1d", 365, 31),
)


async def _fill(engine: AsyncEngine, rows: int) -> int:
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        org = await service.create_organisation(session, "bench", "free")
        key = await service.create_key(session, Settings().key_secret.get_secret_value(), "bench")
    now, rng = time.time(), random.Random(0)
    batch = []
    table = cast(Table, UsageRecord.__table__)
    for index in range(rows):
        batch.append(
            {
                "request_id": uuid.uuid4().hex,
                "org_id": org.id,
                "key_id": key.key.id,
                "model": rng.choice(("a", "b", "c")),
                "prompt_tokens": rng.randrange(10, 2_000),
                "completion_tokens": rng.randrange(1, 500),
                "images": rng.randrange(3),
                "video_frames": 0,
                "status": "ok",
                "started_at": datetime.fromtimestamp(now - rng.randrange(365 * DAY), UTC),
                "first_token_ms": 1.0,
                "duration_ms": 2.0,
                "prompt_estimated": False,
            }
        )
        if len(batch) == 5_000 or index == rows - 1:
            async with engine.begin() as connection:
                await connection.execute(insert(table), batch)
            batch = []
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))
    return org.id


async def _measure(label: str, url: str, rows: int) -> None:
    await asyncio.to_thread(migrate.upgrade, Settings(), "head", url)
    engine = create_engine(Settings(), url)
    try:
        org_id = await _fill(engine, rows)
        end = int(time.time()) // DAY * DAY + DAY
        async with session_factory(engine)() as session:
            for width, days, limit in PAGES:
                query = UsageQuery(org_id, end - days * DAY, end, width, ("model",), limit)
                await usage_page(session, query)  # warm the caches
                started = time.perf_counter()
                for _ in range(REPEATS):
                    page = await usage_page(session, query)
                ms = (time.perf_counter() - started) / REPEATS * 1000
                print(
                    f"{label:10} {rows:>9,} rows  {days:>3} days by {width}, "
                    f"{len(page.data):>3} buckets/page: {ms:7.1f} ms per page"
                )
    finally:
        await engine.dispose()


async def main(rows: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        await _measure("sqlite", f"sqlite+aiosqlite:///{directory}/bench.db", rows)
    name = f"visiongate_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        await _measure("postgresql", f"{base}/{name}", rows)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().rows))
