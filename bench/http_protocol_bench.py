"""The HTTP protocol's own cost: uvicorn's httptools and h11, and the gateway's limited one.

Run: ``.venv/bin/python -m bench.http_protocol_bench``. For each protocol it starts uvicorn
(uvloop, one worker) serving a trivial ASGI app that reads the body and answers 200, sends
the gateway benchmark's chat request on keep-alive connections for a few seconds, and
prints requests per second and the server's CPU time per request (from /proc), i.e. what
the protocol adds to every request before the application runs. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import uvloop

from bench.gateway_bench import HTTPConnection
from tests.support.processes import free_port

PROTOCOLS = {
    "httptools": "httptools",
    "limited httptools": "gateway.http_limits:LimitedHttpToolsProtocol",
    "h11": "h11",
}
CONCURRENCY = 16
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the request's body, answer a small JSON body."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


def serve(protocol: str, port: int) -> None:
    """Run uvicorn with ``protocol`` (a name, or module:class) until killed."""
    http: Any = protocol
    if ":" in protocol:
        module, name = protocol.split(":")
        http = getattr(__import__(module, fromlist=[name]), name)
    uvicorn.run(app, port=port, loop="uvloop", http=http, log_level="warning")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port: int) -> int:
    """Requests completed in SECONDS at CONCURRENCY."""
    body = b'{"model": "bench", "messages": [{"role": "user", "content": "Hi"}]}'
    connections = [HTTPConnection(port, "bench-key", body) for _ in range(CONCURRENCY)]
    for connection in connections:
        await connection.open()
    deadline = time.perf_counter() + SECONDS
    done = 0

    async def worker(connection: HTTPConnection) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await connection.call()
            done += 1

    await asyncio.gather(*(worker(connection) for connection in connections))
    for connection in connections:
        await connection.close()
    return done


def measure(label: str, protocol: str) -> None:
    """Start a server with ``protocol``, load it, print its figures."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.http_protocol_bench", "--serve", protocol, str(port)]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        uvloop.run(load(port))  # warm-up
        before = cpu_seconds(server.pid)
        done = uvloop.run(load(port))
        cpu = cpu_seconds(server.pid) - before
        print(
            f"{label:>18}: {done / SECONDS:8.0f} req/s, server CPU {cpu / done * 1e6:6.1f} µs/req",
            flush=True,
        )
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    """Every protocol in turn."""
    print(f"{CONCURRENCY} keep-alive connections, {SECONDS:.0f} s each", flush=True)
    for label, protocol in PROTOCOLS.items():
        measure(label, protocol)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        main()
