"""The one way a request notices its client left: a :class:`DisconnectWatch`.

Once the body has been read, the next ASGI message uvicorn delivers is ``http.disconnect``.
One watcher task per request waits for it from then on. While a stage is awaited through
:meth:`DisconnectWatch.guard`, a disconnect cancels the request's task with
:data:`DISCONNECTED` as the cancellation's message, so the code being cancelled (admission's
context) can tell a departed client from any other cancellation; the awaiting caller gets
:class:`ClientDisconnected`. A disconnect between guarded stages is acted on when the next
one starts. A stream already under way is cancelled by Litestar instead, when its send fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from litestar.types import Receive

from gateway.errors import ApiError

T = TypeVar("T")
DISCONNECTED = "client disconnected"


class ClientDisconnected(ApiError):
    """The client went away before the answer was ready (nginx's 499; nobody reads it)."""

    status_code = 499
    code = "client_closed_request"


def is_disconnect(error: BaseException) -> bool:
    """Whether ``error`` is the cancellation a :class:`DisconnectWatch` causes."""
    return isinstance(error, asyncio.CancelledError) and error.args == (DISCONNECTED,)


class DisconnectWatch:
    """Watches the current task's client from now until :meth:`stop`."""

    def __init__(self, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._guarding = False
        self._left = False  # the client disconnected
        self._cancelled = False  # and the watch cancelled the task for it
        self._watcher = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._left = True
        if self._guarding:
            self._cancel()

    def _cancel(self) -> None:
        self._cancelled = True
        self._task.cancel(DISCONNECTED)

    async def guard(self, work: Awaitable[T]) -> T:
        """Await ``work``; if the client disconnects first, stop it (and so its Triton request)."""
        self._guarding = True
        if self._left:
            self._cancel()  # it left between stages: ``work`` stops at its first await
        try:
            return await work
        except asyncio.CancelledError:
            if not self._cancelled:
                raise
            self._cancelled = False
            self._task.uncancel()
            raise ClientDisconnected("The client closed the connection.") from None
        finally:
            self._guarding = False

    def stop(self) -> None:
        """Stop watching (before a response goes out, or when the request failed)."""
        self._watcher.cancel()
