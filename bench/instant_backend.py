"""The gateway on an in-process backend that answers at once: no Triton, no model process.

For ``bench/gateway_bench.py``'s worker-scaling rows. With Triton on the same machine, even
the instant model takes most of a core at the rate one gateway worker reaches; here nothing
but the gateway (and the load generator) needs the cores, so what two workers add over one
is the gateway's own scaling. Run as ``python -m bench.instant_backend --port P --workers N``:
``visiongate serve`` (its database preparation, logging, metrics directory, HTTP limits),
with the app built on :class:`InstantBackend` instead of the Triton pool.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncGenerator, Sequence

from litestar import Litestar

from gateway import app, server
from gateway.errors import BackendUnavailable
from gateway.settings import Settings
from inference import contract

PROMPT_TOKENS, IMAGE_TOKENS = 16, 64  # counted, not computed: nothing reads the prompt


class InstantBackend:
    """Follows the model backend's contract (gateway/backend/interface.py) in-process."""

    capabilities = contract.Capabilities(
        model="instant",
        engine="instant",
        vision=True,
        video="frames_as_images",
        tools=False,
        guided_decoding=False,
        context_length=32768,
        prompt_cost=contract.PromptCost(chars_per_token=4.0, message_tokens=4, base_tokens=2),
    )

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def describe(self, triton_model: str) -> contract.Capabilities:
        """Capabilities like the instant Triton model's."""
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
    ) -> AsyncGenerator[contract.Prefill | str | contract.Final, None]:
        """A Prefill, ``max_tokens`` one-character deltas and a Final, at once."""
        prompt_tokens = PROMPT_TOKENS + IMAGE_TOKENS * (len(images) + len(video_frames))
        yield contract.Prefill(prompt_tokens=prompt_tokens)
        for _ in range(request.max_tokens):
            yield "x"
        yield contract.Final(
            finish_reason="length",
            prompt_tokens=prompt_tokens,
            completion_tokens=request.max_tokens,
        )


def create_app() -> Litestar:
    """The gateway on VISIONGATE_* settings, on the instant backend."""
    return app.create_app(backend=InstantBackend())


def main() -> None:
    """``visiongate serve`` with this module's app; a Triton URL must be set (it is unused)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    settings = Settings()
    if settings.triton_url is None:
        raise SystemExit("set VISIONGATE_TRITON_URL (unused), or serve starts a Triton")
    factory = "bench.instant_backend:create_app"
    sys.exit(server.serve(settings, "127.0.0.1", args.port, args.workers, app=factory))


if __name__ == "__main__":
    main()
