"""What the gateway needs of a model backend; :class:`~gateway.backend.TritonPool` is one.

Tests build the app on an in-process stand-in that follows the same contract.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Protocol

from gateway.errors import BackendUnavailable
from inference import contract

if TYPE_CHECKING:
    from gateway.backend.pool import Restarted


class ModelBackend(Protocol):
    """Opened and closed with the app; asked to describe, check and run models."""

    async def open(self) -> None:
        """Connect (and start any health checks)."""

    async def close(self) -> None:
        """Disconnect."""

    async def describe(self, triton_model: str) -> contract.Capabilities:
        """What the model says it can do."""

    async def ready(self, triton_model: str) -> bool:
        """Whether the model can take requests now."""

    def health(self) -> list[dict[str, object]]:
        """Each server's state, for ``/readyz``."""

    def unavailable(self, why: str) -> BackendUnavailable:
        """A 503 telling the client when to retry."""

    def generate(
        self,
        triton_model: str,
        request: contract.GenerateRequest,
        images: Sequence[bytes] = (),
        video_frames: Sequence[bytes] = (),
        frame_counts: Sequence[int] = (),
        *,
        restartable: bool = False,
    ) -> AsyncGenerator[
        contract.Prefill | contract.DeltaLogprobs | str | contract.Final | Restarted, None
    ]:
        """A Prefill, text deltas and a Final (a :class:`Restarted` where it started again)."""
        ...
