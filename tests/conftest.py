"""Session-wide fixtures: the expensive things (Triton, the gateway) start once and are shared."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.launcher import EmbeddedTriton


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh VISIONGATE_CACHE_DIR: the default model is built from its seed in this session."""
    path = tmp_path_factory.mktemp("visiongate-cache")
    os.environ["VISIONGATE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def triton(cache_dir: Path) -> Iterator[EmbeddedTriton]:
    """The embedded Triton server serving model_repository/vlm, started once per session."""
    server = EmbeddedTriton(grpc_port=free_port(), metrics_port=free_port(), echo=False)
    server.start()
    try:
        server.wait_ready(timeout_s=300)
        yield server
    finally:
        server.stop()
