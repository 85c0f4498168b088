"""Gateway overhead: the same small request straight to Triton and through the gateway.

Run: ``.venv/bin/python -m bench.gateway_bench``. It starts its own embedded Triton and one
gateway worker (``visiongate serve --workers 1``), then, at each concurrency, sends the same
non-streaming one-token request both ways and prints p50/p99 latency, requests per second
and the gateway/direct ratios; then time to first token of a streamed answer both ways; and
the gateway's own CPU time per request (from /proc), i.e. what one gateway core could serve
if Triton were not the bottleneck. Prints figures; asserts nothing.

The HTTP load generator is a minimal keep-alive HTTP/1.1 client over asyncio streams, so
that the client's own cost (which shares this machine's cores) stays small.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio
import uvloop

from gateway.settings import Settings
from inference import contract
from inference.launcher import EmbeddedTriton
from tests.conftest import free_port, visiongate

MODEL = "visiongate/tiny-random-llava"
MESSAGES = [{"role": "user", "content": "Hi"}]
CONCURRENCY = (1, 16, 64)
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
STREAM_TOKENS = 16
STREAM_RUNS = 40


def triton_request(max_tokens: int) -> bytes:
    """The contract request the gateway sends for the benchmark's chat."""
    return contract.encode_request(
        contract.GenerateRequest(
            messages=[contract.Message("user", "Hi")], max_tokens=max_tokens, temperature=0.0
        )
    )


def http_request(port: int, key: str, stream: bool, max_tokens: int) -> bytes:
    """The raw HTTP request for the same chat."""
    body = json.dumps(
        {
            "model": MODEL,
            "messages": MESSAGES,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": stream,
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class HTTPConnection:
    """One keep-alive connection that sends a fixed request and reads a response."""

    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def close(self) -> None:
        """Disconnect."""
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    async def call(self, first_byte: list[float] | None = None) -> None:
        """Send the request; read the whole response (Content-Length or chunked)."""
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        status = await self.reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"gateway answered {status!r}")
        length, chunked = 0, False
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            await self.reader.readexactly(length)
            return
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            if first_byte is not None and not first_byte:
                first_byte.append(time.perf_counter())
            await self.reader.readexactly(size + 2)
            if size == 0:
                return


def triton_inputs(raw: bytes) -> list[grpcclient.InferInput]:
    """The request tensor."""
    tensor = grpcclient.InferInput(contract.INPUT_REQUEST, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([raw], dtype=np.object_))
    return [tensor]


async def _one(raw: bytes) -> AsyncIterator[dict[str, Any]]:
    yield {"model_name": contract.MODEL_NAME, "inputs": triton_inputs(raw)}


async def direct_call(
    client: aio.InferenceServerClient, raw: bytes, first_byte: list[float] | None = None
) -> None:
    """One request straight to Triton, read to its final response."""
    async for result, error in client.stream_infer(_one(raw)):
        if error is not None:
            raise RuntimeError(str(error))
        if first_byte is not None and not first_byte:
            first_byte.append(time.perf_counter())
        final = result.get_response().parameters.get(contract.FINAL_RESPONSE_PARAMETER)
        if final is not None and final.bool_param:
            return


async def load(
    calls: list[Callable[[], Awaitable[None]]], seconds: float
) -> tuple[list[float], float]:
    """Run each caller in a loop for ``seconds``; latencies and requests per second."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(call: Callable[[], Awaitable[None]]) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(call) for call in calls))
    return latencies, len(latencies) / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    return float(np.quantile(values, q)) * 1000


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench(triton: EmbeddedTriton, port: int, key: str, gateway_pid: int) -> None:
    """Run every measurement and print the table."""
    client = aio.InferenceServerClient(triton.grpc_url)
    raw = triton_request(1)
    print(f"\nnon-streaming, max_tokens=1, {SECONDS:.0f} s per cell, 2-core machine shared by all")
    print(
        f"{'conc':>4} | {'direct p50':>10} {'p99':>7} {'rps':>6} | {'gateway p50':>11} {'p99':>7} "
        f"{'rps':>6} | {'+p50 ms':>7} {'+p99 ms':>7} {'rps ratio':>9} | gw CPU/req"
    )
    for concurrency in CONCURRENCY:
        await load([lambda: direct_call(client, raw)] * concurrency, 0.5)  # warm-up
        direct, direct_rps = await load([lambda: direct_call(client, raw)] * concurrency, SECONDS)
        connections = [
            HTTPConnection(port, http_request(port, key, False, 1)) for _ in range(concurrency)
        ]
        for connection in connections:
            await connection.open()
        await load([c.call for c in connections], 0.5)
        cpu_before = cpu_seconds(gateway_pid)
        through, gateway_rps = await load([c.call for c in connections], SECONDS)
        cpu_per_request = (cpu_seconds(gateway_pid) - cpu_before) / len(through)
        for connection in connections:
            await connection.close()
        print(
            f"{concurrency:>4} | {pct(direct, 0.5):>8.2f}ms {pct(direct, 0.99):>7.2f} "
            f"{direct_rps:>6.0f} | {pct(through, 0.5):>9.2f}ms {pct(through, 0.99):>7.2f} "
            f"{gateway_rps:>6.0f} | {pct(through, 0.5) - pct(direct, 0.5):>7.2f} "
            f"{pct(through, 0.99) - pct(direct, 0.99):>7.2f} {gateway_rps / direct_rps:>9.2f} | "
            f"{cpu_per_request * 1e6:.0f} µs (≈{1 / cpu_per_request:.0f} req/s per core)"
        )

    stream_raw = triton_request(STREAM_TOKENS)
    connection = HTTPConnection(port, http_request(port, key, True, STREAM_TOKENS))
    await connection.open()
    direct_ttft, gateway_ttft = [], []
    for _ in range(STREAM_RUNS):
        for call, into in (
            (lambda f: direct_call(client, stream_raw, f), direct_ttft),
            (connection.call, gateway_ttft),
        ):
            first: list[float] = []
            started = time.perf_counter()
            await call(first)
            into.append(first[0] - started)
    await connection.close()
    await client.close()
    print(f"\nstreaming, max_tokens={STREAM_TOKENS}, concurrency 1, {STREAM_RUNS} runs each")
    print(
        f"time to first token: direct p50 {pct(direct_ttft, 0.5):.2f} ms, gateway p50 "
        f"{pct(gateway_ttft, 0.5):.2f} ms, overhead "
        f"{statistics.median(gateway_ttft) * 1000 - statistics.median(direct_ttft) * 1000:.2f} ms"
    )


def main() -> None:
    """Start Triton and a gateway, measure, stop them."""
    os.environ.setdefault("VISIONGATE_CACHE_DIR", tempfile.mkdtemp(prefix="visiongate-bench-"))
    port = free_port()
    # An enterprise organisation: the benchmark measures the gateway, not its rate limits.
    visiongate("db", "upgrade")
    visiongate("orgs", "create", "bench", "--tier", "enterprise")
    key = visiongate("keys", "create", "--org", "bench").splitlines()[-1]
    repository = Settings().model_repository  # VISIONGATE_MODEL_REPOSITORY
    with EmbeddedTriton(
        repository, grpc_port=free_port(), metrics_port=free_port(), echo=False
    ) as triton:
        gateway = subprocess.Popen(
            [str(Path(sys.executable).parent / "visiongate"), "serve", "--port", str(port)],
            env={**os.environ, "VISIONGATE_TRITON_URL": triton.grpc_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise SystemExit("the gateway did not become ready")
                time.sleep(0.1)
            uvloop.run(bench(triton, port, key, gateway.pid))
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)


if __name__ == "__main__":
    main()
