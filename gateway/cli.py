"""The ``visiongate`` command line."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import typer

from gateway.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    """visiongate: an OpenAI- and Groq-compatible gateway for vision-language models on Triton."""


@app.command()
def triton(
    grpc_port: int | None = typer.Option(
        None, help="gRPC port [VISIONGATE_TRITON_GRPC_PORT, 8001]"
    ),
    metrics_port: int | None = typer.Option(
        None, help="metrics port [VISIONGATE_TRITON_METRICS_PORT, 8002]"
    ),
) -> None:
    """Run only the embedded Triton server, serving model_repository/ until SIGINT or SIGTERM."""
    from inference.launcher import EmbeddedTriton, TritonStartError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = Settings()
    server = EmbeddedTriton(
        settings.model_repository,
        host=settings.triton_host,
        grpc_port=grpc_port or settings.triton_grpc_port,
        metrics_port=metrics_port or settings.triton_metrics_port,
        exit_timeout_s=settings.triton_exit_timeout_s,
    )

    def shutdown(signum: int, frame: FrameType | None) -> None:
        typer.echo(f"visiongate: {signal.Signals(signum).name}, stopping Triton", err=True)
        server.terminate()  # the main thread sees it exit and cleans up

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        server.start()
        server.wait_ready(timeout_s=settings.triton_startup_timeout_s)
    except (TritonStartError, KeyboardInterrupt) as exc:
        server.stop()
        typer.echo(f"visiongate: Triton did not start: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"visiongate: Triton ready, model vlm on grpc://{server.grpc_url}", err=True)
    server.wait()
    sys.exit(server.stop() or 0)
