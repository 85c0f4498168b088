"""Fixtures every test package shares.

Session-wide, the expensive things (Triton, the gateway) start once and are shared; per test,
a migrated database (SQLite and PostgreSQL) for tests/db, tests/admin and tests/limits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.db.engine import create_engine, session_factory
from gateway.settings import Settings
from gateway.triton_process import EmbeddedTriton
from tests.support.processes import GatewayProcess, free_port, start_gateway, visiongate
from tests.support.services import DATABASE_BACKENDS, empty_database, migrated


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
    """A fresh VISIONGATE_CACHE_DIR: the session's own SQLite database lives there."""
    path = tmp_path_factory.mktemp("visiongate-cache")
    os.environ["VISIONGATE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def triton(cache_dir: Path) -> Iterator[EmbeddedTriton]:
    """The embedded Triton server serving model_repository/vlm, started once per session."""
    with EmbeddedTriton(
        http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), echo=False
    ) as server:
        yield server


@pytest.fixture(scope="session")
def api_key(cache_dir: Path) -> str:
    """A key of an enterprise organisation in the session's database, made with the CLI."""
    visiongate("db", "upgrade")
    visiongate("orgs", "create", "tests", "--tier", "enterprise")
    return visiongate("keys", "create", "--org", "tests", "--name", "test suite").splitlines()[-1]


@pytest.fixture(scope="session")
def gateway(
    triton: EmbeddedTriton, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """`visiongate serve` in front of the shared Triton, started once per session."""
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with start_gateway(triton.http_url, log_path, api_key) as process:
        yield process


@pytest.fixture(params=DATABASE_BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database, SQLite or PostgreSQL."""
    async for url in empty_database(request.param, tmp_path):
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database."""
    await migrated(database_url)
    engine = create_engine(Settings(), database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the migrated database."""
    return session_factory(engine)
