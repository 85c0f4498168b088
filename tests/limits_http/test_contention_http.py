"""Accuracy under contention: 50 concurrent clients against an RPM limit of 20 admit exactly 20.

On SQLite the one worker's in-process limiter decides; on PostgreSQL two worker processes
(`--workers 2`) share the limit through Redis.
"""

from __future__ import annotations

import asyncio
import time

from tests.support.chat import chat
from tests.support.stack import Stack

CLIENTS = 50
LIMIT = 20  # ORGS["lh-contention"]: one request's share of the minute comes back every 3 s


async def test_fifty_clients_get_exactly_the_rpm_limit(stack: Stack) -> None:
    org = "lh-contention"
    go = asyncio.Event()
    async with stack.http(stack.keys[org]) as http:

        async def client() -> tuple[int, float]:
            await go.wait()
            response = await http.post("/v1/chat/completions", json=chat(1))
            return response.status_code, time.monotonic()

        clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
        await asyncio.sleep(0)
        began = time.monotonic()
        go.set()
        results = await asyncio.gather(*clients)

    statuses = [status for status, _ in results]
    # A refusal is answered at admission; all of them inside one request's share of the
    # minute, so no capacity came back while the clients raced.
    refused_by = max((at for status, at in results if status == 429), default=began) - began
    assert refused_by < 60 / LIMIT, f"the race took {refused_by:.1f} s: too slow to be exact"
    assert (statuses.count(200), statuses.count(429)) == (LIMIT, CLIENTS - LIMIT), statuses
    rows = await stack.usage(org)
    assert len(rows) == LIMIT and {row.status for row in rows} == {"ok"}
    if stack.name == "postgresql":
        # Both workers started (the second may still be writing its start-up line).
        deadline = time.monotonic() + 15
        while stack.main.log_path.read_text().count("gateway ready") < 2:
            assert time.monotonic() < deadline, "the second worker never started"
            await asyncio.sleep(0.1)
