"""The embedded Triton (gateway/triton_process.py), `visiongate triton`: ready, stop, failure."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.triton_process import DEFAULT_MODEL_REPOSITORY, EmbeddedTriton, TritonStartError
from tests.support.processes import free_port


def test_a_broken_model_fails_with_the_servers_reason(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(DEFAULT_MODEL_REPOSITORY, repository)
    config = repository / "vlm" / "config.pbtxt"
    config.write_text(
        config.read_text().replace('string_value: "transformers"', 'string_value: "nope"')
    )
    server = EmbeddedTriton(
        repository,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        echo=False,
    )
    server.start()
    try:
        with pytest.raises(TritonStartError) as failure:
            server.wait_ready(timeout_s=120)
    finally:
        server.stop()
    assert "unknown engine 'nope'" in str(failure.value)


def test_a_missing_repository_is_refused_before_starting(tmp_path: Path) -> None:
    with pytest.raises(TritonStartError, match=r"no vlm/config\.pbtxt"):
        EmbeddedTriton(tmp_path).start()


def test_cli_serves_until_sigterm_then_exits_cleanly(cache_dir: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    env = dict(
        os.environ,
        VISIONGATE_TRITON_HTTP_PORT=str(http_port),
        VISIONGATE_TRITON_GRPC_PORT=str(grpc_port),
        VISIONGATE_TRITON_METRICS_PORT=str(free_port()),
    )
    cli = Path(sys.executable).parent / "visiongate"
    process = subprocess.Popen(
        [str(cli), "triton"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        lines.append(line)
        if "Triton ready" in line or time.monotonic() > deadline:
            break
    ready = [line for line in lines if "Triton ready" in line]
    assert ready, "".join(lines[-20:])
    assert f"http://127.0.0.1:{http_port}" in ready[0]
    assert f"grpc://127.0.0.1:{grpc_port}" in ready[0]

    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest[-2000:]
    assert "All models are stopped, unloading models" in rest
    server_left = subprocess.run(["pgrep", "-f", f"grpc-port={grpc_port}"], capture_output=True)
    assert server_left.returncode == 1, "tritonserver outlived the CLI"
