"""The wheel, installed with its dependencies into a fresh virtualenv, runs from anywhere.

This is what ``pip install .`` gives (the Dockerfile's path), not the editable checkout: the
wheel is built from a copy of the sources the Dockerfile copies, installed with the
``inference`` extra into a virtualenv outside the checkout, and run from an empty directory
with ``PYTHONPATH`` unset and no ``VISIONGATE_*`` setting inherited, so nothing it needs can
come from the checkout.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.support.media import encode, photo
from tests.support.processes import GatewayProcess, default_key, free_port

ROOT = Path(__file__).resolve().parents[2]
# What the Dockerfile's wheel stage copies.
SOURCES = ("pyproject.toml", "README.md", "gateway", "inference")
# Everything besides the Python modules that the installed program reads at run time.
DATA_FILES = (
    "gateway/db/migrations/script.py.mako",
    "gateway/limits/*.lua",
    "gateway/playground/static/*",
    "inference/model_repository/vlm/config.pbtxt",
    "inference/weights/tiny-vlm/*",
)
MODEL = "visiongate/tiny-vlm"
# Installing torch and the other dependencies takes a minute or two, Triton's start another.
pytestmark = pytest.mark.timeout(900)


@dataclass
class Installed:
    """visiongate installed from its wheel into a fresh virtualenv; commands run in ``workdir``."""

    venv: Path
    workdir: Path
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        """A command line of the virtualenv's ``visiongate``."""
        return [str(self.venv / "bin" / "visiongate"), *args]

    def run(self, *args: str, timeout: float = 180) -> str:
        """Run ``visiongate``; its output, or a failure naming what it said."""
        result = subprocess.run(
            self.command(*args),
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, (
            f"visiongate {' '.join(args)}:\n{result.stdout}{result.stderr}"
        )
        return result.stdout


def pip(python: Path | str, *args: str, cwd: Path) -> None:
    """``python -m pip ARGS`` outside the checkout; a failure shows pip's output."""
    result = subprocess.run(
        [str(python), "-m", "pip", *args],
        cwd=cwd,
        env=outside_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"pip {' '.join(args)}:\n{result.stdout}{result.stderr}"


def outside_env(venv: Path | None = None) -> dict[str, str]:
    """This environment without the checkout's virtualenv, PYTHONPATH or VISIONGATE_* settings."""
    ours = str(Path(sys.executable).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VISIONGATE_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    path = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry != ours]
    if venv is not None:
        path.insert(0, str(venv / "bin"))
    env["PATH"] = os.pathsep.join(path)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built with ``pip wheel --no-deps`` from a clean copy of the sources."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip(
        sys.executable,
        "wheel",
        "--no-deps",
        "--wheel-dir",
        str(work / "dist"),
        str(source),
        cwd=work,
    )
    (built,) = (work / "dist").glob("visiongate-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """A fresh virtualenv with the pinned torch, then the wheel and its ``inference`` extra.

    The virtualenv (1.4 GB) is removed afterwards.
    """
    work = tmp_path_factory.mktemp("installed")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=work)
    python = venv / "bin" / "python"
    # --no-compile halves the install time: only the modules a run imports get byte-compiled.
    install = ("install", "-q", "--no-compile", "-c", str(ROOT / "constraints.txt"))
    # torch first and pinned, as `make install` does: this machine's disk has the CPU build.
    pip(python, *install, "torch", cwd=work)
    pip(python, *install, f"{wheel}[inference]", cwd=work)
    workdir = work / "run"
    workdir.mkdir()
    env = outside_env(venv) | {"VISIONGATE_CACHE_DIR": str(work / "cache")}
    yield Installed(venv, workdir, env)
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture
def served(installed: Installed, tmp_path: Path) -> Iterator[GatewayProcess]:
    """``visiongate serve`` with its embedded Triton, after ``db upgrade`` on a new database."""
    installed.run("db", "upgrade")
    state = json.loads(installed.run("db", "current", "--json"))
    assert state["current"] is not None and state["current"] == state["head"], state
    port = free_port()
    env = installed.env | {
        "VISIONGATE_TRITON_HTTP_PORT": str(free_port()),
        "VISIONGATE_TRITON_GRPC_PORT": str(free_port()),
        "VISIONGATE_TRITON_METRICS_PORT": str(free_port()),
    }
    log_path = tmp_path / "serve.log"
    process = subprocess.Popen(
        installed.command("serve", "--port", str(port)),
        cwd=installed.workdir,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", process, log_path, "")
    try:
        wait_until_ready(gateway)
        yield gateway
    finally:
        gateway.stop()


def wait_until_ready(gateway: GatewayProcess, timeout_s: float = 420) -> None:
    """Until /readyz answers 200 (the default model is built and Triton started first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            code = gateway.process.returncode
            pytest.fail(f"visiongate serve exited ({code}):\n{gateway.log_tail()}")
        try:
            if httpx.get(gateway.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"visiongate serve never became ready:\n{gateway.log_tail()}")


def test_the_wheel_holds_the_packages_and_their_data_files_and_nothing_else(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    metadata = {name for name in names if name.startswith("visiongate-0.1.0.dist-info/")}
    expected = {
        path.relative_to(ROOT).as_posix()
        for pattern in ("gateway/**/*.py", "inference/**/*.py", *DATA_FILES)
        for path in ROOT.glob(pattern)
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert "gateway/db/migrations/env.py" in expected
    assert "gateway/db/migrations/versions/0001_initial.py" in expected
    assert "inference/model_repository/vlm/1/model.py" in expected
    assert sorted(names - metadata) == sorted(expected)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    result = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import gateway; print(gateway.__file__)"],
        cwd=installed.workdir,
        env=installed.env,
        capture_output=True,
        text=True,
        check=True,
    )
    location = Path(result.stdout.strip())
    assert location.is_relative_to(installed.venv), location
    assert not location.is_relative_to(ROOT), location


def test_db_upgrade_then_serve_answers_a_chat_with_an_image_and_the_playground(
    served: GatewayProcess,
) -> None:
    key = default_key(served)
    assert key, f"serve printed no key on an empty database:\n{served.log_tail()}"
    client = OpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0, timeout=120)
    image = "data:image/png;base64," + base64.b64encode(encode(photo(64, 48), "PNG")).decode()
    text = {"type": "text", "text": "What is in this picture?"}
    with_image = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": [text, {"type": "image_url", "image_url": {"url": image}}]}
        ],
        max_tokens=4,
        temperature=0,
    )
    text_only = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [text]}], max_tokens=4, temperature=0
    )
    assert with_image.choices[0].finish_reason in ("stop", "length")
    assert isinstance(with_image.choices[0].message.content, str)
    assert with_image.usage is not None and text_only.usage is not None
    assert 1 <= with_image.usage.completion_tokens <= 4
    # The image reached the model: its tokens are counted in the prompt.
    assert with_image.usage.prompt_tokens > text_only.usage.prompt_tokens
    # The playground is served from the installed package's data files.
    for path in ("/playground", "/playground/static/playground.js"):
        assert httpx.get(served.url + path, timeout=10).status_code == 200, path


def test_visiongate_triton_serves_the_packaged_model_repository(
    installed: Installed, tmp_path: Path
) -> None:
    env = installed.env | {
        "VISIONGATE_TRITON_HTTP_PORT": str(free_port()),
        "VISIONGATE_TRITON_GRPC_PORT": str(free_port()),
        "VISIONGATE_TRITON_METRICS_PORT": str(free_port()),
    }
    log_path = tmp_path / "triton.log"
    process = subprocess.Popen(
        installed.command("triton"),
        cwd=installed.workdir,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 420
        while "visiongate: Triton ready" not in log_path.read_text(errors="replace"):
            assert process.poll() is None, log_path.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-4000:]
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log_path.read_text(errors="replace")[-4000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
