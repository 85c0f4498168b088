"""The ``visiongate`` command line."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import typer

from gateway.admin import admin_tokens
from gateway.admin import db as admin_db
from gateway.admin import keys as admin_keys
from gateway.admin import orgs as admin_orgs
from gateway.admin import tiers as admin_tiers
from gateway.admin import usage as admin_usage
from gateway.settings import Settings
from gateway.triton_process import EmbeddedTriton, TritonStartError

app = typer.Typer(no_args_is_help=True, add_completion=False)
app.add_typer(admin_orgs.app, name="orgs")
app.add_typer(admin_keys.app, name="keys")
app.add_typer(admin_tiers.app, name="tiers")
app.add_typer(admin_db.app, name="db")
app.add_typer(admin_tokens.app, name="admin-tokens")
app.command("usage")(admin_usage.usage)


@app.callback()
def main() -> None:
    """visiongate: an OpenAI- and Groq-compatible gateway for vision-language models on Triton."""


@app.command()
def serve(
    host: str | None = typer.Option(None, help="address to bind [VISIONGATE_HOST, 127.0.0.1]"),
    port: int | None = typer.Option(None, help="HTTP port [VISIONGATE_PORT, 8000]"),
    workers: int | None = typer.Option(None, help="worker processes [VISIONGATE_WORKERS, 1]"),
) -> None:
    """Run the gateway; it starts the embedded Triton unless VISIONGATE_TRITON_URL is set."""
    from gateway.server import serve as run_gateway

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    code = run_gateway(
        settings,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
    )
    raise typer.Exit(code)


@app.command()
def triton(
    http_port: int | None = typer.Option(
        None, help="HTTP port [VISIONGATE_TRITON_HTTP_PORT, 8003]"
    ),
    grpc_port: int | None = typer.Option(
        None, help="gRPC port [VISIONGATE_TRITON_GRPC_PORT, 8001]"
    ),
    metrics_port: int | None = typer.Option(
        None, help="metrics port [VISIONGATE_TRITON_METRICS_PORT, 8002]"
    ),
) -> None:
    """Run only the embedded Triton server, serving its model repository until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    server = EmbeddedTriton(
        settings.model_repository,
        host=settings.triton_host,
        http_port=http_port or settings.triton_http_port,
        grpc_port=grpc_port or settings.triton_grpc_port,
        metrics_port=metrics_port or settings.triton_metrics_port,
        exit_timeout_s=settings.triton_exit_timeout_s,
    )

    stopping = threading.Event()

    def shutdown(signum: int, frame: FrameType | None) -> None:
        typer.echo(f"visiongate: {signal.Signals(signum).name}, stopping Triton", err=True)
        if stopping.is_set() or not ready.is_set():
            server.terminate()  # still starting: end the wait for readiness
        stopping.set()  # the main thread stops the server

    ready = threading.Event()
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        server.start()
        server.wait_ready(timeout_s=settings.triton_startup_timeout_s)
    except (TritonStartError, KeyboardInterrupt) as exc:
        server.stop()
        typer.echo(f"visiongate: Triton did not start: {exc}", err=True)
        raise typer.Exit(1) from exc
    ready.set()
    typer.echo(
        f"visiongate: Triton ready, model vlm on {server.http_url} and grpc://{server.grpc_url}",
        err=True,
    )
    while server.running and not stopping.wait(0.5):
        pass
    sys.exit(server.stop() or 0)
