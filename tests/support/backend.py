"""An in-process model backend that follows the contract, for tests of the API layer.

It answers every request with a Prefill, its scripted deltas and a Final, at once or,
with ``hold``, only once the test releases it; it records what it was asked. Its events
are thread-safe: Litestar's test client runs the app on a loop in another thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.backend import Restarted
from gateway.errors import ApiError, BackendUnavailable
from inference import contract


@dataclass
class Call:
    """One generate request as the backend received it."""

    triton_model: str
    request: contract.GenerateRequest
    images: list[bytes]
    video_frames: list[bytes]
    frame_counts: list[int]
    restartable: bool
    closed: bool = False


@dataclass
class ScriptedBackend:
    """Answers ``deltas`` then a Final of ``prompt_tokens`` + one token per delta.

    ``fail_with``: raised instead of answering (before any output, or after ``fail_after``
    deltas). ``hold``: each answer waits for it after its Prefill. ``restart``: a
    restartable answer yields one delta, a :class:`~gateway.backend.Restarted`, then all.
    """

    deltas: list[str] = field(default_factory=lambda: ["Hello", " world"])
    prompt_tokens: int = 7
    finish_reason: contract.FinishReason = "stop"
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: ApiError | None = None
    fail_after: int = 0
    hold: threading.Event | None = None
    restart: bool = False
    capabilities: contract.Capabilities = field(
        default_factory=lambda: contract.Capabilities(
            model="scripted",
            engine="scripted",
            vision=True,
            video="frames_as_images",
            tools=True,
            guided_decoding=True,
            context_length=4096,
        )
    )
    calls: list[Call] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def describe(self, triton_model: str) -> contract.Capabilities:
        """The scripted capabilities."""
        return self.capabilities

    async def ready(self, triton_model: str) -> bool:
        """Always ready."""
        return True

    def health(self) -> list[dict[str, object]]:
        """One in-process server."""
        return [{"url": "in-process", "healthy": True, "in_flight": 0, "detail": "ok"}]

    def unavailable(self, why: str) -> BackendUnavailable:
        """A 503."""
        return BackendUnavailable(why, retry_after_s=1)

    async def generate(
        self,
        triton_model: str,
        request: contract.GenerateRequest,
        images: Sequence[bytes] = (),
        video_frames: Sequence[bytes] = (),
        frame_counts: Sequence[int] = (),
        *,
        restartable: bool = False,
    ) -> AsyncGenerator[contract.Prefill | str | contract.Final | Restarted, None]:
        """The scripted answer."""
        call = Call(
            triton_model,
            request,
            list(images),
            list(video_frames),
            list(frame_counts),
            restartable,
        )
        self.calls.append(call)
        try:
            yield contract.Prefill(prompt_tokens=self.prompt_tokens)
            self.started.set()
            while self.hold is not None and not self.hold.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            if self.restart and restartable:
                yield self.deltas[0]
                yield Restarted()
            for i, delta in enumerate(self.deltas):
                if self.fail_with is not None and i == self.fail_after:
                    raise self.fail_with
                yield delta
            if self.fail_with is not None:
                raise self.fail_with
            yield contract.Final(
                finish_reason=self.finish_reason,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=len(self.deltas),
                tool_calls=self.tool_calls,
            )
        finally:
            call.closed = True
