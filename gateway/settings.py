"""Settings, from ``VISIONGATE_*`` environment variables (lists and maps as JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Documented in docs/admin.md; `serve` warns while it is in use, compose.yaml overrides it.
DEV_KEY_SECRET = "visiongate-development-key-secret"


class ModelSettings(BaseModel):
    """A public model id and its Triton model; unset capabilities come from the model."""

    id: str
    triton_model: str = "vlm"
    aliases: list[str] = []
    owned_by: str = "visiongate"
    description: str = ""
    vision: bool | None = None
    video: bool | None = None
    tools: bool | None = None
    json_mode: bool | None = None
    max_images: int | None = None
    context_length: int | None = None


DEFAULT_MODELS = [
    ModelSettings(
        id="visiongate/tiny-vlm",
        description="A tiny LLaVA trained on synthetic scenes of coloured shapes: it knows "
        "only that world, and answers anything else with confident nonsense.",
    )
]


class Settings(BaseSettings):
    """Everything an operator can set. Every number that matters is one of these."""

    model_config = SettingsConfigDict(env_prefix="VISIONGATE_", extra="ignore")

    # The embedded Triton, started by `visiongate triton` and by `serve` when no URL is set.
    # Several servers: comma-separated or a JSON list (docs/deploy.md).
    triton_url: str | None = None
    triton_host: str = "127.0.0.1"
    # 8003: the gateway itself listens on 8000 by default, Triton's own default HTTP port.
    triton_http_port: int = 8003
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_startup_timeout_s: float = 300.0
    triton_exit_timeout_s: int = 30
    # None: the repository installed with the inference package (gateway/triton_process.py).
    model_repository: Path | None = None

    # Where the default SQLite database lives.
    cache_dir: Path = Path.home() / ".cache" / "visiongate"

    # Storage (docs/admin.md). None: sqlite+aiosqlite at $VISIONGATE_CACHE_DIR/visiongate.db.
    database_url: str | None = None
    sqlite_busy_timeout_ms: int = 5_000

    # API keys. Set a real key_secret in production: keys are stored as HMAC-SHA-256 with it,
    # so changing it invalidates every key. The default is for development only.
    key_secret: SecretStr = SecretStr(DEV_KEY_SECRET)
    key_cache_ttl_s: float = 60.0
    key_negative_cache_ttl_s: float = 1.0
    key_cache_size: int = 100_000
    # How often each worker polls the config revision; bounds revocation staleness (< 1 s).
    config_poll_interval_s: float = 0.5
    last_used_flush_interval_s: float = 10.0

    # Rate limits. None: the in-process limiter (exact for one process only).
    redis_url: str | None = None
    redis_key_prefix: str = "visiongate:"
    redis_timeout_s: float = 0.25
    # Admissions beyond the pool wait for a connection (up to the timeout) instead of failing.
    redis_max_connections: int = 64
    redis_pool_timeout_s: float = 2.0
    # Redis hiccups (docs/admin.md, "Redis unreachable"). A call that times out or loses its
    # connection is retried redis_retries times, redis_retry_backoff_s apart (the scripts are
    # idempotent): one call gives up after (redis_retries + 1) × redis_timeout_s + backoffs.
    redis_retries: int = 2
    redis_retry_backoff_s: float = 0.05
    # That many calls failing in a row open the circuit breaker: Redis counts as down, the
    # in-process fallback decides, and one call every redis_retry_interval_s tries Redis again.
    redis_breaker_failures: int = 3
    redis_retry_interval_s: float = 1.0
    # Redis Cluster: redis_url names any node; the client finds the others.
    redis_cluster: bool = False
    # While Redis is down each process enforces its share of every limit (limit ÷ processes).
    # None: the number of live processes in Redis' registry, as last seen.
    limits_processes: int | None = None
    # Redis unreachable: False keeps serving on each process's own limiter, True answers 503.
    limits_fail_closed: bool = False
    concurrency_lease_ttl_s: float = 30.0
    concurrency_retry_after_s: float = 1.0
    # Admission reserves an estimate of the prompt plus max_tokens (default_max_tokens within
    # the context when unset); settled to the real count. Text is counted at the model's own
    # measured ratio; these two apply only to a model that does not report one.
    chars_per_token_estimate: float = 4.0
    message_tokens_estimate: int = 4
    image_tokens_estimate: int = 576
    video_frame_tokens_estimate: int = 576

    # Usage records are committed in batches; a request's record is awaited before its end.
    # Records that arrive while a commit is in flight share the next one (group commit); a
    # flush interval above 0 waits that long for more, which every answer pays in latency.
    usage_batch_size: int = 256
    usage_flush_interval_s: float = 0.0
    usage_commit_attempts: int = 3

    # The HTTP gateway (`visiongate serve`).
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    access_log: bool = False
    graceful_shutdown_s: int = 30
    max_request_body_bytes: int = 32 * 1024 * 1024
    # HTTP limits at the server, per worker (gateway/http_limits.py, docs/deploy.md): a longer
    # request line and headers get 431; a head or body slower than its timeout is cut off; an
    # idle connection is closed after keep_alive_timeout_s; connections beyond the cap get 503.
    max_header_bytes: int = 16 * 1024
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_timeout_s: float = 5.0
    max_connections_per_worker: int = 1024
    # Input rules (docs/api.md): how many levels the free-form JSON of a chat request (tools,
    # tool_choice, a response format's schema) may nest, counted from the body's root; and each
    # JSON Schema's own depth, and the values all of a request's schemas may hold together.
    max_json_depth: int = 64
    max_json_schema_depth: int = 32
    max_json_schema_nodes: int = 2_000
    # Public model ids and their Triton models, as JSON (VISIONGATE_MODELS).
    models: list[ModelSettings] = DEFAULT_MODELS
    default_max_images: int = 5

    # Media intake (docs/media.md). Groq's caps by default; a cap exactly at its limit passes.
    max_images_per_request: int = 5
    max_image_url_bytes: int = 20 * 1024 * 1024
    # A request body carrying base64 image data may not exceed this (413, as Groq answers).
    max_base64_request_bytes: int = 4 * 1024 * 1024
    max_image_pixels: int = 33_177_600
    # Local files (file:///abs/path) only under these roots; none: every local path is refused.
    allowed_media_roots: list[Path] = []
    max_local_media_bytes: int = 20 * 1024 * 1024
    # Fetching media URLs: empty allowed_hosts means any public host; names or IPs listed in
    # allowed_private_hosts may resolve to non-public addresses (a server on 127.0.0.1).
    media_allowed_hosts: list[str] = []
    media_allowed_private_hosts: list[str] = []
    media_connect_timeout_s: float = 5.0
    media_fetch_timeout_s: float = 30.0
    media_max_redirects: int = 5
    # Video: sampled to frames that reach the model as images (video_fps, video_max_frames).
    max_videos_per_request: int = 2
    max_video_bytes: int = 32 * 1024 * 1024
    max_video_duration_s: float = 600.0
    video_fps: float = 2.0
    video_max_frames: int = 32
    video_max_frames_ceiling: int = 64
    video_frame_jpeg_quality: int = 90
    # Work per video (docs/media.md): frames decoded (decoding starts at the last keyframe
    # before each sample point) and seconds of decoding; beyond either the video is refused.
    video_max_decoded_frames: int = 10_000
    video_decode_timeout_s: float = 15.0
    # Media decoding threads (None: one per CPU), and how many one organisation may hold at
    # once (None: half of them, at least one), so that one cannot starve the others.
    media_threads: int | None = None
    media_threads_per_org: int | None = None
    # max_tokens when a request sets neither it nor max_completion_tokens (then capped by what
    # is left of the model's context), as OpenAI lets an answer run to its natural end.
    default_max_tokens: int = 4096
    # The most choices (`n`) one chat request may ask for; each is its own backend call.
    max_n: int = 8
    # The gateway's Triton client.
    triton_request_timeout_s: float = 600.0
    triton_health_timeout_s: float = 2.0
    triton_reconnect_backoff_max_ms: int = 1000
    # Several Triton servers: how often each is health-checked, and how one is chosen.
    triton_health_interval_s: float = 1.0
    triton_balance: Literal["least_loaded", "round_robin"] = "least_loaded"

    # Telemetry (docs/deploy.md). Spans and metrics go to: none, console (stdout) or OTLP
    # over HTTP (otlp_endpoint, else OTEL_EXPORTER_OTLP_ENDPOINT); /metrics always answers.
    telemetry_exporter: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str | None = None
    otel_service_name: str = "visiongate"
    telemetry_export_interval_s: float = 10.0
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    retry_after_s: int = 5
