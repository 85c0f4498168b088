"""The limiter's two scripts of every request (admit, settle), on connections of their own.

Through redis-py's client a script call also passes its pool (a condition, a lock, a
timeout, a readiness check and connection metrics on the way out and back), its retry
wrapper and the script's own wrapper. Here the command is written on a connection of
redis-py's own (``Connection.send_packed_command`` and ``read_response``, hiredis parsing)
taken from a list of idle ones. Measured on a 2-core machine, eight concurrent callers on
a real Redis: one admission and its settlement through the limiter cost 246-343 µs of
CPU through the client, 118-157 µs this way. Every call of a request that Redis limits
goes this way when Redis is one server; a cluster routes each call by its keys' slot, so
there the client's scripts stay (``RedisBackend``).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError


class ScriptConnections:
    """Up to ``limit`` connections made like ``pool``'s (its URL, credentials, TLS).

    A call waits up to ``wait_s`` for a connection when all are busy, then raises
    ConnectionError, as redis-py's BlockingConnectionPool does. Sending the command and
    reading its reply take at most ``timeout_s`` together, else redis-py's TimeoutError: one
    deadline instead of the socket timeout redis-py puts on each, which on Python 3.11 wraps
    every write in a task of its own (asyncio.wait_for). A call that fails or is cancelled
    has had its connection closed by redis-py; its next use connects again.
    """

    def __init__(self, pool: ConnectionPool, limit: int, wait_s: float, timeout_s: float) -> None:
        self._connection_class = pool.connection_class
        self._connection_kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        self._idle: list[AbstractConnection] = []
        self._slots = asyncio.Semaphore(limit)
        self._wait_s = wait_s
        self._timeout_s = timeout_s

    async def call(self, *command: str | int) -> Any:
        """Send one command and read its reply; a Redis error reply is raised."""
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._wait_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise ConnectionError("No connection available.") from None
        else:
            await self._slots.acquire()  # returns at once: a slot is free
        if self._idle:
            connection = self._idle.pop()
        else:
            connection = self._connection_class(**self._connection_kwargs)
        try:
            async with asyncio.timeout(self._timeout_s):
                packed = connection.pack_command(*command)
                await connection.send_packed_command(packed, check_health=False)
                return await connection.read_response()
        except TimeoutError:
            raise RedisTimeoutError(f"no reply from Redis in {self._timeout_s} s") from None
        finally:
            self._idle.append(connection)
            self._slots.release()

    async def close(self) -> None:
        """Close the idle connections (call when no call is running)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()


class DirectScript:
    """A Lua script called with EVALSHA on ``connections``; EVAL loads it when Redis lacks it."""

    def __init__(self, connections: ScriptConnections, source: str) -> None:
        self._connections = connections
        self._source = source
        self._sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """Run the script, as redis-py's ``Script.__call__`` does."""
        try:
            return await self._connections.call("EVALSHA", self._sha, len(keys), *keys, *args)
        except NoScriptError:
            # EVAL runs it and caches it, so the next EVALSHA finds it.
            return await self._connections.call("EVAL", self._source, len(keys), *keys, *args)
