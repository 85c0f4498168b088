"""Triton cold start and tokens per second of the default model through Triton.

Run: ``.venv/bin/python -m bench.triton_bench``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import tritonclient.grpc.aio as aio

from gateway.triton_process import EmbeddedTriton
from inference.contract import GenerateRequest, ImagePart
from tests.support.media import image_bytes
from tests.support.processes import free_port
from tests.support.triton_client import stream, user

MAX_TOKENS = 256
RUNS = 8


def cold_start() -> float:
    """Seconds from launching tritonserver until vlm is ready."""
    started = time.perf_counter()
    with EmbeddedTriton(
        http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), echo=False
    ):
        return time.perf_counter() - started


async def tokens_per_second(url: str, images: list[bytes], concurrency: int) -> tuple[float, float]:
    """Aggregate completion tokens per second, and the median time to the first delta."""
    client = aio.InferenceServerClient(url)
    parts = [ImagePart(i) for i in range(len(images))]

    async def one(seed: int) -> tuple[int, float]:
        # The default model rambles on this prompt until max_tokens: every run is as long.
        request = GenerateRequest(
            messages=[user("Tell me a story.", *parts)], max_tokens=MAX_TOKENS, seed=seed
        )
        started = time.perf_counter()
        first: list[float] = []
        answer = await stream(
            client, request, images, on_delta=lambda: first or first.append(time.perf_counter())
        )
        return answer.completion_tokens or 0, first[0] - started

    await one(0)  # warm-up
    started = time.perf_counter()
    results = []
    for batch in range(RUNS // concurrency or 1):
        results += await asyncio.gather(
            *(one(batch * concurrency + i + 1) for i in range(concurrency))
        )
    elapsed = time.perf_counter() - started
    await client.close()
    return sum(tokens for tokens, _ in results) / elapsed, statistics.median(t for _, t in results)


def main() -> None:
    """Print the figures."""
    print(f"cold start, the shipped model: {cold_start():6.2f} s")
    with EmbeddedTriton(
        http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), echo=False
    ) as triton:
        print(f"\ntokens/s through Triton (max_tokens={MAX_TOKENS}, {RUNS} requests each)")
        print(f"{'images':>6} {'concurrency':>11} {'tokens/s':>9} {'ttft p50 ms':>11}")
        for count in (0, 1, 2, 5):
            images = [image_bytes(i, size=(640, 480), fmt="JPEG") for i in range(count)]
            for concurrency in (1, 4):
                rate, ttft = asyncio.run(tokens_per_second(triton.grpc_url, images, concurrency))
                print(f"{count:>6} {concurrency:>11} {rate:>9.0f} {ttft * 1000:>11.1f}")


if __name__ == "__main__":
    main()
