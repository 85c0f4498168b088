"""Triton down: 503 with retry-after; back up: the gateway serves again, with no restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.triton_process import EmbeddedTriton
from tests.support.chat import MODEL
from tests.support.processes import GatewayProcess, free_port, start_gateway

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}


@pytest.fixture
def own_triton(cache_dir: Path) -> Iterator[EmbeddedTriton]:
    """A Triton of this test's own (not started yet), so the shared one keeps running."""
    server = EmbeddedTriton(
        http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), echo=False
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_gateway(
    own_triton: EmbeddedTriton, api_key: str, tmp_path: Path
) -> Iterator[GatewayProcess]:
    gateway = start_gateway(own_triton.http_url, tmp_path / "gateway.log", api_key, ready=False)
    try:
        yield gateway
    finally:
        gateway.stop()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    error = response.json()["error"]
    assert error["type"] == "service_unavailable"
    assert error["code"] == "model_unavailable"


def assert_down(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert_unavailable(client.get("/readyz"))
    assert_unavailable(client.post("/v1/chat/completions", json=BODY))
    assert_unavailable(client.post("/v1/chat/completions", json={**BODY, "stream": True}))


def assert_recovers(client: httpx.Client, triton: EmbeddedTriton) -> None:
    triton.start()
    triton.wait_ready(timeout_s=120)
    deadline = time.monotonic() + 15
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the gateway did not notice Triton came back"
        time.sleep(0.1)
    response = client.post("/v1/chat/completions", json=BODY)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] <= 3


def test_triton_down_then_back(own_triton: EmbeddedTriton, own_gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=own_gateway.url, headers=own_gateway.headers, timeout=30) as client:
        assert_down(client)  # never started
        assert_recovers(client, own_triton)
        own_triton.stop()
        assert_down(client)  # stopped under a connected channel
        assert_recovers(client, own_triton)
