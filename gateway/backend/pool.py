"""Several Triton servers behind one client: health checks, choice, failover.

Each server gets its own client: :class:`TritonHttpBackend` for an ``http://`` URL,
:class:`TritonBackend` (gRPC) otherwise. A background task asks
every server ``is_server_live`` and ``is_model_ready`` for each served model; a server that
fails a check, or a request, is taken out of the rotation and put back when a check passes.
A request goes to the healthy server with the fewest requests in flight (ties in turn), or
strictly in turn with ``triton_balance=round_robin``. A request that fails with the server
unreachable or its model not ready before any output is retried once on another server; a
restartable one (no output shown to its client yet) after output too, announced by a
:class:`Restarted` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from opentelemetry.trace import SpanKind, Status, StatusCode

from gateway import background
from gateway.backend.stream import TritonStreams
from gateway.backend.triton import TritonBackend
from gateway.backend.triton_http import TritonHttpBackend
from gateway.errors import ApiError, BackendUnavailable
from gateway.settings import Settings
from gateway.telemetry import Telemetry
from inference import contract

log = logging.getLogger("visiongate.backend")


def triton_urls(settings: Settings) -> list[str]:
    """``VISIONGATE_TRITON_URL`` as a list: one URL, comma-separated URLs, or a JSON list."""
    raw = settings.triton_url or f"http://{settings.triton_host}:{settings.triton_http_port}"
    raw = raw.strip()
    urls = json.loads(raw) if raw.startswith("[") else raw.split(",")
    return [url.strip() for url in urls if url.strip()]


def triton_backend(settings: Settings, url: str) -> TritonStreams:
    """The client for one server: HTTP for an ``http://`` URL, else gRPC (``host:port``)."""
    if url.startswith("http://"):
        return TritonHttpBackend(settings, url)
    return TritonBackend(settings, url)


class Restarted:
    """In a restartable answer: it starts again on another server; discard what came before."""


@dataclass
class Server:
    """One Triton server, as this worker sees it."""

    backend: TritonStreams
    healthy: bool = True
    in_flight: int = 0
    detail: str = "not checked yet"

    @property
    def url(self) -> str:
        """Its URL, as configured."""
        return self.backend.url


class TritonPool:
    """Every configured Triton server; the interface request handlers use."""

    def __init__(self, settings: Settings, telemetry: Telemetry) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.servers = [Server(triton_backend(settings, url)) for url in triton_urls(settings)]
        self._models = sorted({model.triton_model for model in settings.models})
        self._turn = itertools.count()
        self._checker: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open every channel and start the health checks."""
        for server in self.servers:
            await server.backend.open()
        # A lone server is checked too: /readyz and the metrics then show its state.
        await self.check()
        self._checker = asyncio.create_task(self._check_forever())

    async def close(self) -> None:
        """Stop the checks and close every channel."""
        await background.stop(self._checker)
        for server in self.servers:
            await server.backend.close()

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.triton_health_interval_s)
            try:
                await self.check()
            except Exception:  # a check must never stop the checking
                log.exception("Triton health check failed")

    async def check(self) -> None:
        """Ask every server whether it is live and every served model ready."""
        results = await asyncio.gather(*(self._check(server) for server in self.servers))
        for server, (healthy, detail) in zip(self.servers, results, strict=True):
            if healthy and not server.healthy:
                log.info("Triton %s is healthy again; back in rotation", server.url)
            elif not healthy and server.healthy:
                log.warning("Triton %s failed its health check: %s", server.url, detail)
            server.healthy, server.detail = healthy, detail
            self.telemetry.metrics.triton_up(server.url, healthy)

    async def _check(self, server: Server) -> tuple[bool, str]:
        for model in self._models:
            if not await server.backend.ready(model):
                return False, f"model {model} not ready (or server unreachable)"
        return True, "ok"

    def _mark_down(self, server: Server, why: str) -> None:
        if server.healthy:
            log.warning("Triton %s taken out of rotation: %s", server.url, why)
        server.healthy = False
        server.detail = why
        self.telemetry.metrics.triton_up(server.url, False)

    def choose(self, exclude: Server | None = None) -> Server:
        """The server for the next request: healthy, least loaded (or next in turn)."""
        candidates = [s for s in self.servers if s is not exclude]
        healthy = [s for s in candidates if s.healthy]
        # Nothing healthy: try anyway (the check may lag, and the error is then the real one).
        pool = healthy or candidates or self.servers
        start = next(self._turn) % len(pool)
        ordered = pool[start:] + pool[:start]
        if self.settings.triton_balance == "round_robin":
            return ordered[0]
        return min(ordered, key=lambda s: s.in_flight)

    def unavailable(self, why: str) -> BackendUnavailable:
        """A 503 telling the client when to retry."""
        return self.servers[0].backend.unavailable(why)

    async def ready(self, triton_model: str) -> bool:
        """True when at least one server has ``triton_model`` ready."""
        results = await asyncio.gather(*(s.backend.ready(triton_model) for s in self.servers))
        return any(results)

    async def describe(self, triton_model: str) -> contract.Capabilities:
        """What the model says it can do (asked of one healthy server)."""
        return await self.choose().backend.describe(triton_model)

    def health(self) -> list[dict[str, object]]:
        """Each server's state, for ``/readyz``."""
        return [
            {"url": s.url, "healthy": s.healthy, "in_flight": s.in_flight, "detail": s.detail}
            for s in self.servers
        ]

    async def generate(
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
        """A Prefill, text deltas then a Final, from one server; failover as the module says.

        ``restartable``: the caller has not shown any output to its client yet (a non-streamed
        answer) and can discard what it received; then a failure after some output is retried
        too, and the retry's events follow a :class:`Restarted`.
        """
        chosen = self.choose()
        for attempt in (1, 2):
            server, produced = chosen, False
            span = self.telemetry.tracer.start_span(
                "triton.generate",
                kind=SpanKind.CLIENT,
                attributes={
                    "server.address": server.url,
                    "gen_ai.request.model": triton_model,
                    "visiongate.triton.attempt": attempt,
                },
            )
            server.in_flight += 1
            try:
                events = server.backend.generate(
                    triton_model, request, images, video_frames, frame_counts
                )
                async with contextlib.aclosing(events):
                    async for item in events:
                        if isinstance(item, contract.Prefill):
                            span.add_event(
                                "prefill", {"gen_ai.usage.input_tokens": item.prompt_tokens}
                            )
                        else:
                            if not produced:
                                span.add_event("first_token")
                            produced = True
                        yield item
                return
            except BackendUnavailable as exc:
                self.telemetry.metrics.triton_error(server.url, "unavailable")
                span.set_status(Status(StatusCode.ERROR, exc.message))
                self._mark_down(server, exc.message)
                retry = (not produced or restartable) and len(self.servers) > 1
                if attempt == 2 or not retry:
                    raise
                if produced:
                    yield Restarted()
                log.warning("retrying on another Triton server after: %s", exc.message)
                chosen = self.choose(exclude=server)
            except ApiError as exc:
                self.telemetry.metrics.triton_error(server.url, exc.code or str(exc.status_code))
                span.set_status(Status(StatusCode.ERROR, exc.message))
                raise
            finally:
                server.in_flight -= 1
                span.end()
