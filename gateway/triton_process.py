"""Run the Triton Inference Server that ships inside the ``nvidia-pytriton`` wheel.

This supervises a ``tritonserver`` process for ``visiongate triton``, ``visiongate serve`` and
the tests; it never runs inside Triton. The model repository it serves by default is package
data of ``inference`` (``inference/model_repository``).

Three things make that binary work from a virtualenv (see docs/inference.md):

* the Python backend needs the stub built for the running Python, copied next to
  ``libtriton_python.so`` in the directory given as ``--backend-directory``;
* the stub links ``libpython3.X.so`` and the wheel's own libraries, so the wheel's
  ``nvidia_pytriton.libs`` and this interpreter's ``LIBDIR`` go on ``LD_LIBRARY_PATH``;
* the stub's embedded interpreter takes its prefix from the first ``python3`` on
  ``PATH``, so this interpreter's ``bin/`` goes first, and the stub then sees the
  virtualenv's site-packages (it ignores ``PYTHONPATH``).

The server binds IPv4 only: clients connect to ``127.0.0.1``, not ``localhost``.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from importlib.resources import files
from pathlib import Path
from types import TracebackType

log = logging.getLogger("visiongate.triton")

# Package data of ``inference`` (pyproject.toml). tritonserver reads it from disk: a wheel that
# pip installs unpacks it into a directory; a zipped install has none, and start() says so.
DEFAULT_MODEL_REPOSITORY = Path(str(files("inference") / "model_repository"))
# Triton logs this once every in-flight inference has finished (checked with 2.51).
UNLOADING_LINE = "All models are stopped, unloading models"
UNLOAD_GRACE_S = 5.0


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started us dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TritonStartError(RuntimeError):
    """The server could not be found, exited early, or its model never became ready."""


def _pytriton_root() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise TritonStartError(
            "the nvidia-pytriton wheel is not installed; install visiongate[inference]"
        ) from exc
    root = Path(pytriton.__file__).resolve().parent / "tritonserver"
    if not (root / "bin" / "tritonserver").exists():
        raise TritonStartError(f"no tritonserver binary under {root}")
    return root


def _backend_directory(root: Path, into: Path) -> Path:
    """A backend directory whose python/ holds the stub for this interpreter."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonStartError(f"nvidia-pytriton has no Python backend stub for Python {version}")
    python_dir = into / "python"
    shutil.copytree(root / "backends" / "python", python_dir)
    shutil.copy2(stub, python_dir / stub.name)
    return into


def server_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment tritonserver and its Python stubs need, on top of ``base``."""
    env = dict(os.environ if base is None else base)
    root = _pytriton_root()
    libs = [str(root.parent.parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR")]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class EmbeddedTriton:
    """One tritonserver process serving a model repository over gRPC, with metrics.

    ``model_repository``: None serves the one installed with the ``inference`` package.
    """

    def __init__(
        self,
        model_repository: Path | None = None,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8003,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        env: dict[str, str] | None = None,
        exit_timeout_s: int = 30,
        log_lines: int = 400,
        echo: bool = True,
    ) -> None:
        self.model_repository = Path(model_repository or DEFAULT_MODEL_REPOSITORY).resolve()
        self.host = host
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.metrics_port = metrics_port
        self.env = env
        self.exit_timeout_s = exit_timeout_s
        self.echo = echo
        self.log_tail: collections.deque[str] = collections.deque(maxlen=log_lines)
        self._process: subprocess.Popen[str] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._reader: threading.Thread | None = None
        self._unloading = threading.Event()

    @property
    def http_url(self) -> str:
        """Where the gateway connects (``VISIONGATE_TRITON_URL``)."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """Where a tritonclient.grpc client connects."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """Triton's Prometheus endpoint."""
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    def command(self, backend_directory: Path) -> list[str]:
        """The tritonserver command line."""
        return [
            str(_pytriton_root() / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_directory}",
            "--allow-http=true",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            "--allow-grpc=true",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=false",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--strict-readiness=true",
            "--log-info=true",
        ]

    def start(self) -> None:
        """Start the server process (returns at once; see :meth:`wait_ready`)."""
        if self._process is not None:
            raise RuntimeError("already started")
        if not (self.model_repository / "vlm" / "config.pbtxt").is_file():
            raise TritonStartError(
                f"{self.model_repository} has no vlm/config.pbtxt: tritonserver needs the model "
                "repository as a directory on disk (set VISIONGATE_MODEL_REPOSITORY)"
            )
        self._workdir = tempfile.TemporaryDirectory(prefix="visiongate-triton-")
        backends = _backend_directory(_pytriton_root(), Path(self._workdir.name) / "backends")
        self.log_tail.clear()
        self._unloading.clear()
        self._process = subprocess.Popen(
            self.command(backends),
            env=server_environment(self.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it cleanly
            preexec_fn=_die_with_parent,  # never outlive a killed parent
        )
        self._reader = threading.Thread(target=self._forward_logs, name="triton-log", daemon=True)
        self._reader.start()

    def _forward_logs(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip()
            self.log_tail.append(line)
            if UNLOADING_LINE in line:
                self._unloading.set()
            if self.echo:
                log.info("%s", line)

    def is_ready(self, model: str = "vlm") -> bool:
        """True when the server answers on both HTTP and gRPC and ``model`` is ready."""
        import httpx
        import tritonclient.grpc as grpcclient

        try:
            with grpcclient.InferenceServerClient(self.grpc_url) as client:
                if not (client.is_server_live() and client.is_model_ready(model)):
                    return False
            return httpx.get(f"{self.http_url}/v2/models/{model}/ready").status_code == 200
        except Exception:
            return False

    def wait_ready(self, model: str = "vlm", timeout_s: float = 180.0) -> None:
        """Block until ``model`` is ready; raise TritonStartError with the log if it never is."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise TritonStartError(f"tritonserver exited with code {code}:\n{self._tail()}")
            if self.is_ready(model):
                return
            time.sleep(0.25)
        raise TritonStartError(
            f"model {model!r} not ready after {timeout_s:.0f} s:\n{self._tail()}"
        )

    def _tail(self, lines: int = 40) -> str:
        return "\n".join(list(self.log_tail)[-lines:])

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM) without waiting; safe inside a signal handler."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def stop(self) -> int | None:
        """SIGTERM; let in-flight work finish (up to the exit timeout); return the exit code.

        Once Triton reports that no inference is in flight it unloads the model, and now and
        then the Python backend's unload never completes (the stub is never asked to
        finalize), so Triton sits out its whole exit timeout. Nothing is left to lose by
        then: after ``UNLOAD_GRACE_S`` the process is killed and the stop counts as clean.
        """
        process, self._process = self._process, None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            code = self._await_exit(process)
            # A Python-backend stub outlives a tritonserver that crashed or was killed; the
            # server ran in its own session, so its process group is exactly what it left.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        return code

    def _await_exit(self, process: subprocess.Popen[str]) -> int:
        deadline = time.monotonic() + self.exit_timeout_s + 10
        unload_deadline: float | None = None
        while process.poll() is None:
            now = time.monotonic()
            if unload_deadline is None and self._unloading.is_set():
                unload_deadline = now + UNLOAD_GRACE_S
            if now > deadline or (unload_deadline is not None and now > unload_deadline):
                process.kill()
                process.wait()
                if unload_deadline is None:
                    return process.returncode  # in-flight work outlived the exit timeout
                log.warning("tritonserver did not finish unloading the model; stopped it")
                return 0
            time.sleep(0.05)
        return process.returncode

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedTriton:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
