"""A client that walks away stops the generation in Triton (its counters say so)."""

from __future__ import annotations

import json
import socket
import time

import httpx

from gateway.triton_process import EmbeddedTriton
from tests.support.chat import MODEL
from tests.support.processes import GatewayProcess
from tests.support.triton_client import metric

# Greedy decoding of this prompt runs to the length limit (no end-of-sequence token): all of
# it takes the tiny model about 5 s, and a cancelled request stops far short of it.
LONG = 3000
PROMPT = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0, "max_tokens": LONG}


def wait_for_cancel(triton: EmbeddedTriton, before: float, timeout_s: float = 15) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = metric(triton.metrics_url, "vlm_cancelled_requests_total")
        if now > before:
            return now
        time.sleep(0.05)
    raise AssertionError("Triton never counted a cancelled request")


def counters(triton: EmbeddedTriton) -> tuple[float, float, float]:
    return (
        metric(triton.metrics_url, "vlm_cancelled_requests_total"),
        metric(triton.metrics_url, "vlm_completed_requests_total"),
        metric(triton.metrics_url, "vlm_generated_tokens_total"),
    )


def test_stream_disconnect_cancels_generation(
    gateway: GatewayProcess, triton: EmbeddedTriton
) -> None:
    cancelled, completed, tokens = counters(triton)
    body = {
        "model": MODEL,
        **PROMPT,
        "stream": True,
    }
    with (
        httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        received = [line for _, line in zip(range(6), lines, strict=False) if line]
        assert json.loads(received[0][6:])["choices"][0]["delta"]["role"] == "assistant"
    # Leaving the block closed the connection mid-stream.
    wait_for_cancel(triton, cancelled)
    after_cancelled, after_completed, after_tokens = counters(triton)
    assert after_cancelled == cancelled + 1
    assert after_completed == completed
    assert after_tokens - tokens < LONG


def test_non_streaming_disconnect_cancels_generation(
    gateway: GatewayProcess, triton: EmbeddedTriton
) -> None:
    cancelled, completed, tokens = counters(triton)
    body = json.dumps(
        {
            "model": MODEL,
            **PROMPT,
        }
    ).encode()
    port = int(gateway.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            + f"Authorization: Bearer {gateway.api_key}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        # Wait until Triton is generating for this request, then hang up.
        deadline = time.monotonic() + 10
        while metric(triton.metrics_url, "vlm_requests_in_flight") < 1:
            assert time.monotonic() < deadline, "generation never started"
            time.sleep(0.02)
    wait_for_cancel(triton, cancelled)
    after_cancelled, after_completed, after_tokens = counters(triton)
    assert after_cancelled == cancelled + 1
    assert after_completed == completed
    assert after_tokens - tokens < LONG
