"""Session-wide fixtures: the expensive things (Triton, the gateway) start once and are shared."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from inference.launcher import EmbeddedTriton


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_service(what: str, command: str, port: int) -> None:
    """Start a local service with this machine's own command; fail clearly if it won't run."""
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    deadline = time.monotonic() + 30
    while not _listening(port):
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what} is not running on 127.0.0.1:{port} and `{command}` did not start it:\n"
                f"{result.stdout}{result.stderr}",
                pytrace=False,
            )
        time.sleep(0.2)


# The commands these machines start their services with (see the project's machine notes).
REDIS_START = (
    "mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes "
    "--bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no --dir /var/lib/redis "
    "--logfile /var/log/redis/ci.log"
)
POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture(scope="session", autouse=True)
def local_services() -> None:
    """PostgreSQL and Redis on their local ports, started here when they are not running."""
    if "VISIONGATE_TEST_REDIS_URL" not in os.environ and not _listening(6379):
        _start_service("Redis", REDIS_START, 6379)
    if "VISIONGATE_TEST_POSTGRES_URL" not in os.environ and not _listening(5432):
        _start_service("PostgreSQL", POSTGRES_START, 5432)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh VISIONGATE_CACHE_DIR: the default model is built from its seed in this session."""
    path = tmp_path_factory.mktemp("visiongate-cache")
    os.environ["VISIONGATE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def triton(cache_dir: Path) -> Iterator[EmbeddedTriton]:
    """The embedded Triton server serving model_repository/vlm, started once per session."""
    with EmbeddedTriton(grpc_port=free_port(), metrics_port=free_port(), echo=False) as server:
        yield server


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


@pytest.fixture(scope="session")
def api_key(cache_dir: Path) -> str:
    """A key of an enterprise organisation in the session's database, made with the CLI."""
    visiongate("db", "upgrade")
    visiongate("orgs", "create", "tests", "--tier", "enterprise")
    return visiongate("keys", "create", "--org", "tests", "--name", "test suite").splitlines()[-1]


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


@pytest.fixture(scope="session")
def gateway(
    triton: EmbeddedTriton, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """`visiongate serve` in front of the shared Triton, started once per session."""
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    process = start_gateway(triton.grpc_url, log_path, api_key)
    try:
        yield process
    finally:
        process.stop()
