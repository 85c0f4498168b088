"""SIGTERM during a stream: the stream completes and its usage is recorded."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import httpx

from gateway.triton_process import EmbeddedTriton
from tests.support.chat import parse_sse
from tests.support.processes import start_gateway


def test_sigterm_lets_a_running_stream_finish_and_records_its_usage(
    triton: EmbeddedTriton, api_key: str, tmp_path: Path
) -> None:
    gateway = start_gateway(triton.http_url, tmp_path / "gateway.log", api_key)
    body = {
        "model": "visiongate/tiny-vlm",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 600,
        "temperature": 0,
        "stream": True,
    }
    lines: list[str] = []
    try:
        with httpx.stream(
            "POST",
            gateway.url + "/v1/chat/completions",
            json=body,
            headers=gateway.headers,
            timeout=120,
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append(line)
                if len(lines) == 10:
                    gateway.process.send_signal(signal.SIGTERM)
        assert gateway.process.wait(timeout=60) == 0, gateway.log_tail()
    finally:
        gateway.stop()
    events = parse_sse(lines)
    assert events[-1] == "[DONE]", gateway.log_tail()
    chunks = [json.loads(e) for e in events[:-1]]
    request_id = chunks[0]["x_groq"]["id"]
    usage = chunks[-1]["x_groq"]["usage"]
    assert usage["completion_tokens"] == 600
    database = Path(os.environ["VISIONGATE_CACHE_DIR"]) / "visiongate.db"
    with sqlite3.connect(database) as db:
        row = db.execute(
            "select status, completion_tokens from usage_records where request_id = ?",
            (request_id,),
        ).fetchone()
    assert row == ("ok", 600)
