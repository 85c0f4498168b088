"""Gateway overhead: what the gateway costs in front of a model that answers instantly.

Run: ``.venv/bin/python -m bench.gateway_bench``. It starts an embedded Triton serving the
instant model of ``bench/instant_model`` (the contract's stream, no engine: see its
``model.py``), so the gateway, not the model, is what saturates. Then, for a one-token text
chat and for a chat carrying one 640×480 JPEG as base64, the same request goes straight to
Triton (gRPC, tritonclient) and through ``visiongate serve`` with every stage on at its
defaults (auth, limits, usage records, metrics, traces; Triton over HTTP, and once over
gRPC for comparison), and it prints:

* the gateway's own CPU per request (user + system, from /proc, every process of ``serve``)
  and its ratio to the target (1.0 ms text with the in-process limiter and SQLite, 1.5 ms
  with Redis limits, 2.0 ms with the JPEG);
* p50 and p99 latency one request at a time, and what the gateway adds to direct Triton;
* requests per second with ``BENCH_CONCURRENCY`` clients (8), at 1 and 2 workers, and the
  2-worker/1-worker ratio (target ≥ 1.8), in front of Triton and, since Triton's share of
  the cores leaves a second worker little on a small machine, once more on an in-process
  backend that answers at once (``bench/instant_backend.py``: no Triton at all);
* the cores busy under load: the gateway's, Triton's and the load generator's (this
  process), which says whether the machine, rather than the gateway, is what saturates;
  with 2 workers, each gateway process's share too: uvicorn's workers share one listening
  socket, and keep-alive connections opened at once can all land on one worker (seen here
  in two runs of three), which then serves alone, so the load generator opens its
  connections one at a time while the open ones keep a worker busy.

``BENCH_SECONDS`` (4) is the length of each measurement; a run takes about 24 of them plus
six gateway starts. The load generator is a minimal keep-alive HTTP/1.1 client over
asyncio streams, so that its own cost (it shares the machine's cores) stays small. The
organisation is on the enterprise tier: its limits are checked on every request but not
reached. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aio
import uvloop
from PIL import Image

from gateway.triton_process import EmbeddedTriton
from inference import contract

MODEL = "visiongate/tiny-vlm"
INSTANT_MODEL = Path(__file__).resolve().parent / "instant_model"
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PROMPT = "What's in this image?"
# Gateway CPU per request, ms: the targets.
TARGET_TEXT_MS, TARGET_REDIS_MS, TARGET_JPEG_MS = 1.0, 1.5, 2.0
TARGET_WORKER_SCALING = 1.8


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def visiongate(*args: str) -> str:
    """Run the ``visiongate`` CLI; its standard output."""
    command = [str(Path(sys.executable).parent / "visiongate"), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def jpeg_640x480() -> bytes:
    """A photograph-like 640×480 JPEG (gradients and noise), quality 85."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 90), 128 + 100 * np.cos(y / 96), x * 0 + 128], -1)
    pixels = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@dataclass(frozen=True)
class Case:
    """One request, as the client sends it and as the gateway should hand it to Triton."""

    name: str
    body: bytes
    contract_request: bytes
    images: tuple[bytes, ...]


def cases() -> list[Case]:
    """The text chat and the JPEG chat, both for one token."""
    jpeg = jpeg_640x480()
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    chat = {"model": MODEL, "max_tokens": 1, "temperature": 0}
    text = [{"role": "user", "content": PROMPT}]
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": PROMPT},
                {"type": "image_url", "image_url": {"url": uri}},
            ],
        }
    ]

    def contract_request(content: str | list[contract.Part]) -> bytes:
        message = contract.Message("user", content)
        request = contract.GenerateRequest(messages=[message], max_tokens=1, temperature=0.0)
        return contract.encode_request(request)

    image_parts: list[contract.Part] = [contract.TextPart(PROMPT), contract.ImagePart(0)]
    return [
        Case("text", json.dumps({**chat, "messages": text}).encode(), contract_request(PROMPT), ()),
        Case(
            f"jpeg {len(jpeg) // 1024} KiB",
            json.dumps({**chat, "messages": image}).encode(),
            contract_request(image_parts),
            (jpeg,),
        ),
    ]


class HTTPConnection:
    """One keep-alive connection that sends a fixed request and reads a response."""

    def __init__(self, port: int, key: str, body: bytes) -> None:
        self.port = port
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body
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

    async def call(self) -> None:
        """Send the request; read the whole (Content-Length) response."""
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        status = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        if b" 200 " not in status:
            raise RuntimeError(f"gateway answered {status!r}: {body[:300]!r}")


def triton_inputs(case: Case) -> list[grpcclient.InferInput]:
    """The request's tensors, built once and sent on every direct call."""
    tensor = grpcclient.InferInput(contract.INPUT_REQUEST, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([case.contract_request], dtype=np.object_))
    inputs = [tensor]
    if case.images:
        images = grpcclient.InferInput(contract.INPUT_IMAGES, [len(case.images)], "BYTES")
        images.set_data_from_numpy(np.array(case.images, dtype=np.object_))
        inputs.append(images)
    return inputs


async def direct_call(client: aio.InferenceServerClient, inputs: list[Any]) -> None:
    """One request straight to Triton, read to its final response."""

    async def one() -> AsyncIterator[dict[str, Any]]:
        yield {"model_name": contract.MODEL_NAME, "inputs": inputs}

    async for result, error in client.stream_infer(one()):
        if error is not None:
            raise RuntimeError(str(error))
        final = result.get_response().parameters.get(contract.FINAL_RESPONSE_PARAMETER)
        if final is not None and final.bool_param:
            return


async def load(calls: Sequence[Callable[[], Awaitable[None]]], seconds: float) -> list[float]:
    """Run each caller in a loop for ``seconds``; every request's latency."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(call: Callable[[], Awaitable[None]]) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(call) for call in calls))
    return latencies


def ms(values: list[float], q: float) -> float:
    """The q-quantile in milliseconds."""
    return float(np.quantile(values, q)) * 1000


def _process_tree(pid: int) -> Iterator[int]:
    yield pid
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            yield from _process_tree(int(child))


def cpu_by_process(pid: int) -> dict[int, float]:
    """User plus system CPU seconds of a process and of each descendant now alive, from /proc."""
    seconds = {}
    for each in _process_tree(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        seconds[each] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its descendants now alive, from /proc."""
    return sum(cpu_by_process(pid).values())


@dataclass
class Cell:
    """One case through one gateway configuration."""

    cpu_ms: float
    rps: float
    p50_ms: float
    p99_ms: float
    cores: tuple[float, float, float] = (0.0, 0.0, 0.0)  # gateway, Triton, load generator
    # The cores each process of the gateway kept busy, busiest first (with 2 workers: how
    # the keep-alive connections fell between them, which the kernel decides at accept).
    processes: tuple[float, ...] = ()


async def through_gateway(
    port: int, key: str, pid: int, triton_pid: int, case: Case, latency: bool
) -> Cell:
    """CPU and rate under ``CONCURRENCY`` clients; latency (optional) one at a time."""
    connections = [HTTPConnection(port, key, case.body) for _ in range(CONCURRENCY)]
    for i, connection in enumerate(connections):
        await connection.open()
        # The connections open so far keep the worker that took them busy, so that with 2
        # workers an idle one is likelier to accept the next (else all may land on one).
        await load([c.call for c in connections[: i + 1]], 0.05)
    await load([c.call for c in connections], 1.0)  # warm-up
    before = cpu_seconds(pid), cpu_seconds(triton_pid), time.process_time()
    by_process = cpu_by_process(pid)
    started = time.perf_counter()
    done = await load([c.call for c in connections], SECONDS)
    elapsed = time.perf_counter() - started
    after = cpu_seconds(pid), cpu_seconds(triton_pid), time.process_time()
    busy = [t - by_process.get(p, 0.0) for p, t in cpu_by_process(pid).items()]
    gateway_s, triton_s, client_s = (a - b for a, b in zip(after, before, strict=True))
    single = await load([connections[0].call], SECONDS) if latency else [0.0]
    for connection in connections:
        await connection.close()
    cores = (gateway_s / elapsed, triton_s / elapsed, client_s / elapsed)
    return Cell(
        gateway_s / len(done) * 1000,
        len(done) / elapsed,
        ms(single, 0.5),
        ms(single, 0.99),
        cores,
        tuple(sorted((b / elapsed for b in busy if b / elapsed >= 0.01), reverse=True)),
    )


async def direct(triton: EmbeddedTriton, case: Case) -> Cell:
    """The same request straight to Triton: rate under load, latency one at a time."""
    client = aio.InferenceServerClient(triton.grpc_url)
    inputs = triton_inputs(case)
    call = [lambda: direct_call(client, inputs)]
    await load(call * CONCURRENCY, 1.0)
    started = time.perf_counter()
    done = await load(call * CONCURRENCY, SECONDS)
    rps = len(done) / (time.perf_counter() - started)
    single = await load(call, SECONDS)
    await client.close()
    return Cell(0.0, rps, ms(single, 0.5), ms(single, 0.99))


@contextmanager
def gateway(
    triton: EmbeddedTriton, workers: int, env: dict[str, str], transport: str = "http"
) -> Iterator[tuple[int, int]]:
    """``visiongate serve`` in front of ``triton`` over ``transport``: its port and pid.

    ``transport`` "in-process": no Triton, the app on bench/instant_backend.py's backend.
    """
    port = free_port()
    if transport == "in-process":
        url = "http://127.0.0.1:9"  # named so that serve starts no Triton; never called
        command = [sys.executable, "-m", "bench.instant_backend", "--port", str(port)]
    else:
        url = triton.http_url if transport == "http" else triton.grpc_url
        command = [str(Path(sys.executable).parent / "visiongate"), "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env={**os.environ, "VISIONGATE_TRITON_URL": url, **env},
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
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the gateway did not become ready")
            time.sleep(0.1)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


CONFIGS = [
    # name, workers, environment, CPU target per case (None: not a target), measure latency,
    # transport to Triton
    ("1 worker, in-process limiter, SQLite", 1, {}, (TARGET_TEXT_MS, TARGET_JPEG_MS), True, "http"),
    (
        "1 worker, Redis limiter, SQLite",
        1,
        {"VISIONGATE_REDIS_URL": REDIS_URL},
        (TARGET_REDIS_MS, None),
        True,
        "http",
    ),
    ("2 workers, in-process limiter, SQLite", 2, {}, (None, None), False, "http"),
    ("1 worker, in-process limiter, SQLite, gRPC to Triton", 1, {}, (None, None), False, "grpc"),
    # No Triton (bench/instant_backend.py): the cores are the gateway's, for the scaling.
    ("1 worker, in-process backend (no Triton)", 1, {}, (None, None), False, "in-process"),
    ("2 workers, in-process backend (no Triton)", 2, {}, (None, None), False, "in-process"),
]


async def measure(triton: EmbeddedTriton, key: str) -> None:
    """Every measurement, printed as it is made."""
    all_cases = cases()
    print(f"\n{SECONDS:.0f} s per measurement, {CONCURRENCY} clients under load; 2-core machine")
    baseline = {case.name: await direct(triton, case) for case in all_cases}
    for case in all_cases:
        cell = baseline[case.name]
        print(
            f"direct Triton, {case.name:<12} p50 {cell.p50_ms:6.2f} ms  p99 {cell.p99_ms:6.2f} ms"
            f"  {cell.rps:6.0f} req/s"
        )
    one_worker: dict[tuple[str, str], float] = {}  # (transport, case): req/s at 1 worker
    prefix = uuid.uuid4().hex[:8]
    for name, workers, env, targets, latency, transport in CONFIGS:
        print(f"\n{name}")
        env = {**env, "VISIONGATE_REDIS_KEY_PREFIX": f"vgbench-{prefix}:"}
        with gateway(triton, workers, env, transport) as (port, pid):
            for case, target in zip(all_cases, targets, strict=True):
                assert triton.pid is not None
                cell = await through_gateway(port, key, pid, triton.pid, case, latency)
                line = f"  {case.name:<12} CPU {cell.cpu_ms:5.2f} ms/req"
                line += f" ({cell.cpu_ms / target:4.2f}× target)" if target else " " * 16
                if latency:
                    base = baseline[case.name]
                    line += (
                        f"  +p50 {cell.p50_ms - base.p50_ms:5.2f} ms"
                        f"  +p99 {cell.p99_ms - base.p99_ms:5.2f} ms"
                    )
                line += f"  {cell.rps:6.0f} req/s"
                if workers == 1:
                    one_worker.setdefault((transport, case.name), cell.rps)
                else:
                    scaling = cell.rps / one_worker[transport, case.name]
                    line += f" ({scaling:.2f}× 1 worker; target ≥ {TARGET_WORKER_SCALING})"
                gateway_cores, triton_cores, client_cores = cell.cores
                line += (
                    f"\n{'':15}cores busy: gateway {gateway_cores:.2f}, Triton {triton_cores:.2f},"
                    f" load generator {client_cores:.2f} (of {os.cpu_count()})"
                )
                if workers > 1:
                    line += "; per gateway process " + " + ".join(
                        f"{c:.2f}" for c in cell.processes
                    )
                print(line, flush=True)


def main() -> None:
    """Start Triton with the instant model, measure, stop everything."""
    os.environ.setdefault("VISIONGATE_CACHE_DIR", tempfile.mkdtemp(prefix="visiongate-bench-"))
    visiongate("db", "upgrade")
    visiongate("orgs", "create", "bench", "--tier", "enterprise")
    key = visiongate("keys", "create", "--org", "bench").splitlines()[-1]
    with EmbeddedTriton(
        INSTANT_MODEL,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        echo=False,
    ) as triton:
        uvloop.run(measure(triton, key))


if __name__ == "__main__":
    main()
