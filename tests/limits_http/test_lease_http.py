"""A gateway killed mid-stream: its concurrency slot comes back when its lease expires."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.chat import chat, open_stream
from tests.support.stack import Stack

LEASE_TTL_S = 1.0


@pytest.mark.parametrize("stack", ["postgresql"], indirect=True)
async def test_a_killed_gateways_slot_comes_back_after_the_lease_ttl(stack: Stack) -> None:
    org = "lh-lease"  # concurrency 1, shared through Redis
    doomed = stack.start("doomed", VISIONGATE_CONCURRENCY_LEASE_TTL_S=str(LEASE_TTL_S))
    async with stack.http(stack.keys[org], doomed) as dying, stack.http(stack.keys[org]) as http:
        stream = await open_stream(dying, chat(2_000, stream=True))
        busy = await http.post("/v1/chat/completions", json=chat(1))
        assert busy.status_code == 429, busy.text
        assert "concurrent requests: Limit 1, Used 1" in busy.json()["error"]["message"]

        doomed.process.kill()  # SIGKILL: it never finishes the request nor releases the slot
        doomed.process.wait()
        killed = time.monotonic()
        statuses = []
        while True:
            response = await http.post("/v1/chat/completions", json=chat(1))
            statuses.append(response.status_code)
            if response.status_code == 200:
                break
            assert response.status_code == 429, response.text
            assert time.monotonic() - killed < LEASE_TTL_S + 2, "the dead gateway's slot stuck"
            await asyncio.sleep(0.05)
        waited = time.monotonic() - killed
        await stream.aclose()
    assert statuses[0] == 429, "the lease of the killed request was not held"
    assert waited <= LEASE_TTL_S + 0.5
