"""Two Triton servers behind one gateway; one is killed mid-run, then restarted."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway.triton_process import EmbeddedTriton
from tests.support.chat import chat_body
from tests.support.processes import GatewayProcess, free_port, start_gateway
from tests.support.triton_client import metric

COMPLETED = "vlm_completed_requests_total"
IN_FLIGHT = "vlm_requests_in_flight"


@pytest.fixture(scope="module")
def second_triton(triton: EmbeddedTriton) -> Iterator[EmbeddedTriton]:
    """Another Triton serving the same repository."""
    with EmbeddedTriton(
        http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), echo=False
    ) as server:
        yield server


@pytest.fixture(scope="module")
def pair_gateway(
    triton: EmbeddedTriton,
    second_triton: EmbeddedTriton,
    api_key: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    """A gateway spreading requests over both servers."""
    urls = f"{triton.http_url},{second_triton.http_url}"
    log = tmp_path_factory.mktemp("pair") / "gateway.log"
    gateway = start_gateway(urls, log, api_key, env={"VISIONGATE_TRITON_HEALTH_INTERVAL_S": "0.3"})
    try:
        yield gateway
    finally:
        gateway.stop()


def _ask(gateway: GatewayProcess, max_tokens: int = 30) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json=chat_body(max_tokens=max_tokens),
        headers=gateway.headers,
        timeout=120,
    )


def test_killing_one_server_mid_run_fails_no_request_and_it_serves_again_after_restart(
    triton: EmbeddedTriton,
    second_triton: EmbeddedTriton,
    pair_gateway: GatewayProcess,
    tmp_path: Path,
) -> None:
    # Both servers take work.
    before = metric(second_triton.metrics_url, COMPLETED)
    with ThreadPoolExecutor(4) as pool:
        warm = list(pool.map(lambda _: _ask(pair_gateway, 4), range(4)))
    assert [r.status_code for r in warm] == [200] * 4
    assert metric(second_triton.metrics_url, COMPLETED) > before

    # Kill one while requests are in flight on both: every client still gets its answer.
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(_ask, pair_gateway) for _ in range(12)]
        deadline = time.monotonic() + 30
        while (in_flight := metric(second_triton.metrics_url, IN_FLIGHT)) < 1:
            assert time.monotonic() < deadline, "no request ever reached the second server"
            time.sleep(0.02)
        assert in_flight >= 1  # the server killed below is generating for a client
        assert second_triton.pid is not None
        os.kill(second_triton.pid, signal.SIGKILL)
        answers = [f.result() for f in futures]
    assert [r.status_code for r in answers] == [200] * 12, [r.text for r in answers]
    second_triton.stop()

    # The same address comes back: the gateway puts it back into rotation by itself.
    restarted = EmbeddedTriton(
        http_port=second_triton.http_port,
        grpc_port=second_triton.grpc_port,
        metrics_port=second_triton.metrics_port,
        echo=False,
    )
    restarted.start()
    try:
        restarted.wait_ready(timeout_s=300)
        deadline = time.monotonic() + 30
        served = 0.0
        while time.monotonic() < deadline and not served:
            with ThreadPoolExecutor(2) as pool:
                again = list(pool.map(lambda _: _ask(pair_gateway, 2), range(2)))
            assert [r.status_code for r in again] == [200, 200]
            served = metric(restarted.metrics_url, COMPLETED)
        assert served > 0, pair_gateway.log_tail()
    finally:
        restarted.stop()
