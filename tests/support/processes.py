"""Processes the tests start: `visiongate serve`, the `visiongate` CLI, free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

# The line `visiongate serve` prints before the key it made for the ``default`` organisation.
DEFAULT_KEY_BANNER = "visiongate: created organisation 'default'"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GatewayProcess:
    """A `visiongate serve` subprocess."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header a client sends."""
        return {"authorization": f"Bearer {self.api_key}"}

    def log_tail(self, lines: int = 60) -> str:
        """The end of its log, for failure messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def visiongate(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the `visiongate` CLI; its standard output, or a failure naming what it said."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "visiongate"), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"visiongate {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def start_gateway(
    triton_url: str,
    log_path: Path,
    api_key: str,
    env: dict[str, str] | None = None,
    ready: bool = True,
) -> GatewayProcess:
    """`visiongate serve` on a free port, returned once /readyz (or /healthz) answers 200."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "visiongate"), "serve", "--port", str(port)],
        env={**os.environ, "VISIONGATE_TRITON_URL": triton_url, **(env or {})},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", process, log_path, api_key)
    probe = "/readyz" if ready else "/healthz"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            code = process.returncode
            raise RuntimeError(f"visiongate serve exited ({code}):\n{gateway.log_tail()}")
        try:
            if httpx.get(gateway.url + probe, timeout=2).status_code == 200:
                return gateway
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"visiongate serve never answered {probe}:\n{gateway.log_tail()}")


def default_key(gateway: GatewayProcess) -> str | None:
    """The key a gateway printed for the ``default`` organisation, if it printed one."""
    lines = gateway.log_path.read_text(errors="replace").splitlines()
    for index, line in enumerate(lines):
        if line.startswith(DEFAULT_KEY_BANNER):
            return lines[index + 1].strip()
    return None
