"""``n`` choices of one chat: a seed per choice, and their backend streams run at once.

Choice 0 keeps the request's seed (so it is the answer ``n=1`` gives); choice ``i`` gets a
seed hashed from ``(seed, i)``, the same in every process. Unseeded choices draw fresh
entropy each, so they differ. :func:`merged` runs one backend stream per choice
concurrently and yields their items as they come, tagged with the choice's index.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import TypeVar

Item = TypeVar("Item")


def choice_seed(seed: int | None, index: int) -> int | None:
    """Choice ``index``'s seed: the request's own for choice 0, an int64 of ``(seed, index)``."""
    if seed is None or index == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def merged(
    streams: Sequence[AsyncGenerator[Item, None]],
) -> AsyncGenerator[tuple[int, Item], None]:
    """Every stream's items, each with its stream's index, as they arrive.

    The first stream to fail raises its error here; that, or closing this generator, cancels
    (and closes) every stream still running.
    """
    queue: asyncio.Queue[tuple[int, Item | Exception | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncGenerator[Item, None]) -> None:
        try:
            async with aclosing(stream):
                async for item in stream:
                    queue.put_nowait((index, item))
        except Exception as exc:  # handed to the reader, which raises it
            queue.put_nowait((index, exc))
        finally:
            queue.put_nowait((index, None))  # this stream is done, however it ended

    tasks = [asyncio.create_task(pump(i, stream)) for i, stream in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
