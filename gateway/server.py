"""``visiongate serve``: the embedded Triton (unless one is configured) and the HTTP workers."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import shutil
import signal
import tempfile

import uvicorn

from gateway.admin import development_secret_warning, ensure_default_organisation
from gateway.db import migrate
from gateway.http_limits import LimitedHttpToolsProtocol
from gateway.settings import Settings
from gateway.telemetry.logging import log_config
from gateway.telemetry.metrics import use_multiprocess_dir
from gateway.triton_process import EmbeddedTriton, TritonStartError

log = logging.getLogger("visiongate.server")


def prepare_database(settings: Settings) -> None:
    """Migrate; on an empty database create the ``default`` organisation and print its key once."""
    migrate.upgrade(settings)
    secret = asyncio.run(ensure_default_organisation(settings))
    if secret is not None:
        print(  # stdout, not the log: the key is shown once, to the operator
            "visiongate: created organisation 'default' (tier free) and its API key; "
            "it is shown only this once:\n" + secret,
            flush=True,
        )
    warning = development_secret_warning(settings)
    if warning:
        log.warning("%s", warning)


def serve(
    settings: Settings, host: str, port: int, workers: int, app: str = "gateway.app:create_app"
) -> int:
    """Run the gateway until SIGINT/SIGTERM; return the exit code.

    ``app``: the import path of the factory each worker builds its app with (the benchmark
    passes one on an in-process backend).

    SIGTERM: uvicorn stops accepting, waits up to ``graceful_shutdown_s`` for in-flight
    requests and streams, then each worker's lifespan flushes usage and telemetry.
    """
    logs = log_config(settings.log_format, settings.log_level)
    logging.config.dictConfig(logs)
    # Prometheus multiprocess mode: every worker writes its values under this directory and
    # /metrics sums them. It must be set before the workers import prometheus_client, and
    # start empty (values left by a previous run would be added to this one's).
    metrics_dir = tempfile.mkdtemp(prefix="visiongate-metrics-")
    use_multiprocess_dir(metrics_dir)
    try:
        return _serve(settings, host, port, workers, logs, app)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _after_shutdown(signum: int, frame: object) -> None:
    log.info("stopped after %s", signal.Signals(signum).name)


def _serve(
    settings: Settings, host: str, port: int, workers: int, logs: dict[str, object], app: str
) -> int:
    prepare_database(settings)
    triton = None
    if settings.triton_url is None:
        triton = EmbeddedTriton(
            settings.model_repository,
            host=settings.triton_host,
            http_port=settings.triton_http_port,
            grpc_port=settings.triton_grpc_port,
            metrics_port=settings.triton_metrics_port,
            exit_timeout_s=settings.triton_exit_timeout_s,
        )
        try:
            triton.start()
            triton.wait_ready(timeout_s=settings.triton_startup_timeout_s)
        except (TritonStartError, KeyboardInterrupt) as exc:
            triton.stop()
            log.error("Triton did not start: %s", exc)
            return 1
        # Every worker reads its settings from the environment: point them all at this one.
        os.environ["VISIONGATE_TRITON_URL"] = triton.http_url
        log.info("embedded Triton ready on %s", triton.http_url)
    # uvicorn handles SIGINT/SIGTERM while it runs (stop accepting, drain, lifespan shutdown)
    # and re-raises the signal once done; this handler takes it, so that the embedded Triton
    # is stopped below and `serve` exits 0 after a graceful shutdown.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _after_shutdown)
    try:
        # uvicorn with uvloop and httptools: already a dependency, one process per worker
        # (its supervisor restarts a dead one), and its per-request cost fits the overhead
        # budget measured by bench/gateway_bench.py. Its httptools protocol, subclassed to
        # enforce the HTTP limits (gateway/http_limits.py): h11 would limit header size alone
        # and cost more per request.
        uvicorn.run(
            app,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http=LimitedHttpToolsProtocol,  # its timeouts are its own, not uvicorn's
            ws="none",  # no WebSocket routes: an upgrade request is an ordinary request
            # On every response, uvicorn's own and the limits' refusals included.
            headers=[("x-content-type-options", "nosniff")],
            access_log=settings.access_log,
            log_config=logs,
            timeout_graceful_shutdown=settings.graceful_shutdown_s,
        )
    finally:
        if triton is not None:
            triton.stop()
    return 0
