"""Shared helpers of the operations tests."""

from __future__ import annotations

import httpx

PROMPT_MARKER = "zebra-quartz-ops-prompt-7731"


def chat_body(max_tokens: int = 8, **extra: object) -> dict[str, object]:
    """A small chat request for the default model."""
    return {
        "model": "visiongate/tiny-random-llava",
        "messages": [{"role": "user", "content": f"Say hi {PROMPT_MARKER}"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }


def parse_sse(lines: list[str]) -> list[str]:
    """The data payloads of an SSE body."""
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


def triton_metric(metrics_url: str, name: str) -> float:
    """The sum of one metric's samples on a Triton server's Prometheus endpoint."""
    total = 0.0
    for line in httpx.get(metrics_url, timeout=5).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total
