"""The limiter's per-request scripts on connections of their own, against the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.limits.redis_scripts import DirectScript, ScriptConnections

ECHO = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}"
# (limit, wait_s, timeout_s) -> connections, closed after the test
Connections = Callable[[int, float, float], ScriptConnections]


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[BlockingConnectionPool]:
    """A pool as the limiter builds one; ScriptConnections makes its connections from it."""
    made = BlockingConnectionPool.from_url(redis_url, max_connections=4, socket_timeout=2.0)
    yield made
    await made.disconnect()


@pytest.fixture
async def connections(pool: BlockingConnectionPool) -> AsyncIterator[Connections]:
    """Make ScriptConnections on ``pool``; all are closed afterwards."""
    made: list[ScriptConnections] = []

    def make(limit: int, wait_s: float, timeout_s: float) -> ScriptConnections:
        made.append(ScriptConnections(pool, limit, wait_s, timeout_s))
        return made[-1]

    yield make
    for each in made:
        await each.close()


async def test_a_script_redis_lacks_is_loaded_then_called_by_its_digest(
    pool: BlockingConnectionPool, connections: Connections, redis_prefix: str
) -> None:
    # A script of this test's own, so no other test has loaded it.
    script = DirectScript(connections(4, 1.0, 2.0), f"-- {redis_prefix}\n{ECHO}")
    client = Redis.from_pool(pool)
    assert await client.script_exists(script._sha) == [False]
    key = f"{redis_prefix}k"
    assert await script(keys=[key], args=["a", 41]) == [key.encode(), b"a", 42]
    assert await client.script_exists(script._sha) == [True]  # EVAL cached it
    assert await script(keys=[key], args=["b", 1]) == [key.encode(), b"b", 2]


async def test_an_error_reply_is_raised_and_the_connection_stays_usable(
    connections: Connections,
) -> None:
    one = connections(1, 1.0, 10.0)
    with pytest.raises(ResponseError):
        await DirectScript(one, "return redis.error_reply('refused')")(keys=[], args=[])
    assert await one.call("PING") == b"PONG"


async def test_when_every_connection_is_busy_a_call_waits_then_gives_up(
    pool: BlockingConnectionPool, connections: Connections, redis_prefix: str
) -> None:
    impatient, patient = connections(1, 0.2, 10.0), connections(1, 5.0, 10.0)
    key = f"{redis_prefix}list"
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


async def assert_next_call_gets_its_own_reply(
    one: ScriptConnections, pool: BlockingConnectionPool, key: str
) -> None:
    """After a BLPOP on ``key`` that ended without its reply: a value pushed now is not
    popped by it, and the next call on ``one`` reads its own reply."""
    await Redis.from_pool(pool).rpush(key, "late")
    assert await one.call("PING") == b"PONG"
    assert await Redis.from_pool(pool).lpop(key) == b"late"  # nobody consumed it


async def test_a_cancelled_call_does_not_leave_its_reply_for_the_next(
    pool: BlockingConnectionPool, connections: Connections, redis_prefix: str
) -> None:
    one, key = connections(1, 1.0, 10.0), f"{redis_prefix}list"
    blocked = asyncio.create_task(one.call("BLPOP", key, 5))
    await asyncio.sleep(0.1)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    await assert_next_call_gets_its_own_reply(one, pool, key)


async def test_a_call_without_a_reply_in_time_is_a_redis_timeout_and_its_reply_is_dropped(
    pool: BlockingConnectionPool, connections: Connections, redis_prefix: str
) -> None:
    one, key = connections(1, 1.0, 0.3), f"{redis_prefix}list"
    with pytest.raises(RedisTimeoutError):  # the limiter retries this kind
        await one.call("BLPOP", key, 5)
    await assert_next_call_gets_its_own_reply(one, pool, key)
