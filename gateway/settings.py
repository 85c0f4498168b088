"""Settings, from ``VISIONGATE_*`` environment variables (lists and maps as JSON)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from inference.launcher import DEFAULT_MODEL_REPOSITORY


class Settings(BaseSettings):
    """Everything an operator can set. Every number that matters is one of these."""

    model_config = SettingsConfigDict(env_prefix="VISIONGATE_", extra="ignore")

    # The embedded Triton, started by `visiongate triton` and by `serve` when no URL is set.
    triton_url: str | None = None
    triton_host: str = "127.0.0.1"
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_startup_timeout_s: float = 300.0
    triton_exit_timeout_s: int = 30
    model_repository: Path = DEFAULT_MODEL_REPOSITORY
