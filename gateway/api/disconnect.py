"""The one way a request notices its client left: :func:`unless_disconnected`.

Once the body has been read, the next ASGI message uvicorn delivers is ``http.disconnect``.
While a stage awaits, a watcher task waits for it and cancels the request's task with
:data:`DISCONNECTED` as the cancellation's message, so the code being cancelled (admission's
context) can tell a departed client from any other cancellation; the awaiting caller gets
:class:`ClientDisconnected`. A stream already under way is cancelled by Litestar instead,
when its send fails.
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
    """Whether ``error`` is the cancellation :func:`unless_disconnected` causes."""
    return isinstance(error, asyncio.CancelledError) and error.args == (DISCONNECTED,)


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[object]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel(DISCONNECTED)


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, stop it (and so its Triton request)."""
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.create_task(_cancel_on_disconnect(receive, task))
    try:
        return await work
    except asyncio.CancelledError:
        if not watcher.done() or watcher.cancelled():
            raise
        task.uncancel()
        raise ClientDisconnected("The client closed the connection.") from None
    finally:
        watcher.cancel()
