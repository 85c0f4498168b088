"""The limiter's per-request scripts on connections of their own, against the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.limits.redis_scripts import DirectScript, ScriptConnections

ECHO = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}"


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[BlockingConnectionPool]:
    """A pool as the limiter builds one; ScriptConnections makes its connections from it."""
    made = BlockingConnectionPool.from_url(redis_url, max_connections=4, socket_timeout=2.0)
    yield made
    await made.disconnect()


async def test_a_script_redis_lacks_is_loaded_then_called_by_its_digest(
    pool: BlockingConnectionPool, redis_prefix: str
) -> None:
    connections = ScriptConnections(pool, 4, 1.0, 2.0)
    # A script of this test's own, so no other test has loaded it.
    script = DirectScript(connections, f"-- {redis_prefix}\n{ECHO}")
    client = Redis.from_pool(pool)
    digest = script._sha
    try:
        assert await client.script_exists(digest) == [False]
        key = f"{redis_prefix}k"
        assert await script(keys=[key], args=["a", 41]) == [key.encode(), b"a", 42]
        assert await client.script_exists(digest) == [True]  # EVAL cached it
        assert await script(keys=[key], args=["b", 1]) == [key.encode(), b"b", 2]
    finally:
        await connections.close()


async def test_an_error_reply_is_raised_and_the_connection_stays_usable(
    pool: BlockingConnectionPool, redis_prefix: str
) -> None:
    connections = ScriptConnections(pool, 1, 1.0, 10.0)
    try:
        with pytest.raises(ResponseError):
            await DirectScript(connections, "return redis.error_reply('refused')")(keys=[], args=[])
        assert await connections.call("PING") == b"PONG"
    finally:
        await connections.close()


async def test_when_every_connection_is_busy_a_call_waits_then_gives_up(
    pool: BlockingConnectionPool, redis_prefix: str
) -> None:
    impatient = ScriptConnections(pool, 1, 0.2, 10.0)
    patient = ScriptConnections(pool, 1, 5.0, 10.0)
    key = f"{redis_prefix}list"
    try:
        blocked = asyncio.create_task(impatient.call("BLPOP", key, 1))
        await asyncio.sleep(0.1)  # it holds the only connection, inside Redis
        with pytest.raises(ConnectionError, match="No connection available"):
            await impatient.call("PING")
        assert await blocked is None  # BLPOP timed out in Redis after 1 s
        # A waiting call gets the connection as soon as it is released.
        held = asyncio.create_task(patient.call("BLPOP", key, 1))
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(patient.call("PING"))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await Redis.from_pool(pool).rpush(key, "x")
        assert await held == [key.encode(), b"x"]
        assert await waiting == b"PONG"
    finally:
        await impatient.close()
        await patient.close()


async def test_a_cancelled_call_does_not_leave_its_reply_for_the_next(
    pool: BlockingConnectionPool, redis_prefix: str
) -> None:
    connections = ScriptConnections(pool, 1, 1.0, 10.0)
    key = f"{redis_prefix}list"
    try:
        blocked = asyncio.create_task(connections.call("BLPOP", key, 5))
        await asyncio.sleep(0.1)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        # Its reply would arrive now; on the same connection it would answer the next call.
        await Redis.from_pool(pool).rpush(key, "late")
        assert await connections.call("PING") == b"PONG"
        assert await Redis.from_pool(pool).lpop(key) == b"late"  # nobody consumed it
    finally:
        await connections.close()


async def test_a_call_without_a_reply_in_time_is_a_redis_timeout_and_its_reply_is_dropped(
    pool: BlockingConnectionPool, redis_prefix: str
) -> None:
    connections = ScriptConnections(pool, 1, 1.0, 0.3)
    key = f"{redis_prefix}list"
    try:
        with pytest.raises(RedisTimeoutError):  # the limiter retries this kind
            await connections.call("BLPOP", key, 5)
        await Redis.from_pool(pool).rpush(key, "late")
        assert await connections.call("PING") == b"PONG"
        assert await Redis.from_pool(pool).lpop(key) == b"late"
    finally:
        await connections.close()
