"""Both Triton clients (HTTP and gRPC) reuse a connection or stream for the next request
once one has ended, and still stop each request on its own: a caller that leaves, or the
request timeout, cancels only that request (Triton's counters say so)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from gateway.backend.pool import triton_backend
from gateway.backend.stream import TritonStreams
from gateway.errors import BackendTimeout
from gateway.settings import Settings
from gateway.triton_process import EmbeddedTriton
from inference import contract
from tests.support.triton_client import metric

CANCELLED = "vlm_cancelled_requests_total"


def ask(max_tokens: int) -> contract.GenerateRequest:
    """A greedy request that runs to ``max_tokens`` (the tiny model never stops early)."""
    message = contract.Message("user", "Hi")
    return contract.GenerateRequest(messages=[message], max_tokens=max_tokens, temperature=0.0)


async def answer(backend: TritonStreams, max_tokens: int = 3) -> contract.Final:
    """The whole answer; its Final."""
    async for item in backend.generate(contract.MODEL_NAME, ask(max_tokens)):
        if isinstance(item, contract.Final):
            return item
    raise AssertionError("no Final")


async def cancelled_after(triton: EmbeddedTriton, before: float) -> float:
    """Poll Triton's cancelled-requests counter until it passes ``before``."""
    deadline = time.monotonic() + 15
    while (now := metric(triton.metrics_url, CANCELLED)) <= before:
        assert time.monotonic() < deadline, "Triton never counted a cancelled request"
        await asyncio.sleep(0.05)
    return now


@pytest.fixture(params=["http", "grpc"])
def url(request: pytest.FixtureRequest, triton: EmbeddedTriton) -> str:
    """The server's URL for one transport: the client is chosen by it."""
    return triton.http_url if request.param == "http" else triton.grpc_url


@pytest.fixture
async def backend(url: str) -> AsyncIterator[TritonStreams]:
    client = triton_backend(Settings(), url)
    await client.open()
    yield client
    await client.close()


async def test_requests_one_after_another_share_one_stream(backend: TritonStreams) -> None:
    for _ in range(3):
        assert (await answer(backend)).completion_tokens == 3
        assert backend.idle_streams == 1


async def test_concurrent_requests_each_get_a_stream_then_keep_it(backend: TritonStreams) -> None:
    finals = await asyncio.gather(*(answer(backend) for _ in range(4)))
    assert [final.completion_tokens for final in finals] == [3] * 4
    assert backend.idle_streams == 4
    await answer(backend)
    assert backend.idle_streams == 4


async def test_a_caller_leaving_cancels_its_request_only(
    backend: TritonStreams, triton: EmbeddedTriton
) -> None:
    await answer(backend)  # one stream kept: the long request below reuses it
    before = metric(triton.metrics_url, CANCELLED)
    beside = asyncio.create_task(answer(backend, 40))
    stream = backend.generate(contract.MODEL_NAME, ask(3000))
    async for item in stream:
        if isinstance(item, str) and item:
            break  # the first text: the model is generating
    await stream.aclose()
    assert backend.idle_streams == 0  # the cancelled stream is not kept
    assert await cancelled_after(triton, before) == before + 1
    assert (await beside).completion_tokens == 40  # the request beside it was not touched
    assert (await answer(backend)).completion_tokens == 3


async def test_the_request_timeout_cancels_the_request(url: str, triton: EmbeddedTriton) -> None:
    backend = triton_backend(Settings(triton_request_timeout_s=0.5), url)
    await backend.open()
    try:
        await answer(backend)
        before = metric(triton.metrics_url, CANCELLED)
        with pytest.raises(BackendTimeout):
            await answer(backend, 3000)
        assert await cancelled_after(triton, before) == before + 1
        assert backend.idle_streams == 0
        assert (await answer(backend)).completion_tokens == 3
    finally:
        await backend.close()
