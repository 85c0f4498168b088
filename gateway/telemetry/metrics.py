"""The gateway's instruments, each recorded twice: OpenTelemetry (pushed by the configured
exporter) and Prometheus (scraped at ``GET /metrics``).

Prometheus needs its own registry because one scrape must see every uvicorn worker:
prometheus_client's multiprocess mode keeps each worker's values in files under
``PROMETHEUS_MULTIPROC_DIR`` (``serve`` sets and empties it before the workers start) and
sums them at scrape time. OpenTelemetry's Prometheus exporter would show only the worker
that happened to answer the scrape. OTLP has no such problem: each process pushes its own
series and the collector adds them up.
"""

from __future__ import annotations

import os
from typing import Any

import prometheus_client as prom
from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation
from prometheus_client import multiprocess, values

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_PREFIX = "visiongate_"
_prom: dict[str, Any] = {}


def _prometheus() -> dict[str, Any]:
    """The Prometheus instruments, registered once per process (apps may be built many times)."""
    if not _prom:
        request_labels = ["route", "status", "model", "tier"]
        _prom.update(
            requests=prom.Counter(
                _PREFIX + "requests", "HTTP requests by route and status", request_labels
            ),
            duration=prom.Histogram(
                _PREFIX + "request_duration_seconds",
                "Time from request to last byte",
                ["route", "model", "tier"],
                buckets=_LATENCY_BUCKETS,
            ),
            ttft=prom.Histogram(
                _PREFIX + "time_to_first_token_seconds",
                "Time from request to the first generated token",
                ["model", "tier"],
                buckets=_LATENCY_BUCKETS,
            ),
            tokens=prom.Counter(_PREFIX + "tokens", "Tokens processed", ["model", "tier", "type"]),
            rate_limited=prom.Counter(
                _PREFIX + "rate_limit_rejections", "Requests refused by limits", ["model", "tier"]
            ),
            media_rejected=prom.Counter(
                _PREFIX + "media_rejections", "Requests refused by media intake", ["rule"]
            ),
            triton_errors=prom.Counter(
                _PREFIX + "triton_errors", "Failed Triton calls", ["server", "reason"]
            ),
            triton_up=prom.Gauge(
                _PREFIX + "triton_server_up",
                "1 while a Triton server passes its health check",
                ["server"],
                multiprocess_mode="livemax",
            ),
            degraded=prom.Gauge(
                _PREFIX + "limiter_degraded_admissions",
                "Admissions decided by a process's own limiter while Redis was unreachable",
                multiprocess_mode="livesum",
            ),
            redis_reachable=prom.Gauge(
                _PREFIX + "limiter_redis_reachable",
                "1 while every worker reaches Redis (when configured)",
                multiprocess_mode="livemin",
            ),
        )
    return _prom


def use_multiprocess_dir(path: str) -> None:
    """Keep Prometheus values under ``path``, summed over processes (before any metric exists)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    # The value class is chosen when prometheus_client is imported, which may have happened
    # already in this process (one worker runs inside `serve` itself).
    values.ValueClass = values.get_value_class()


def prometheus_exposition() -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics``: every worker's values when multiprocess."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prom.REGISTRY
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST


class Metrics:
    """Records what happened; the names match in both systems (dots for OTel, ``_`` for Prom)."""

    def __init__(self, meter: Meter) -> None:
        self._prom = _prometheus()
        # Labelled Prometheus series by name and labels: ``labels()`` costs a lock and checks.
        self._series: dict[tuple[str, ...], Any] = {}
        # False when nothing reads the OpenTelemetry instruments: the request path skips them.
        self._otel = not isinstance(meter, NoOpMeter)
        self._requests = meter.create_counter("visiongate.requests", description="HTTP requests")
        self._duration = meter.create_histogram(
            "visiongate.request.duration", unit="s", description="Time from request to last byte"
        )
        self._ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s", description="Time to first token"
        )
        self._tokens = meter.create_counter("visiongate.tokens", description="Tokens processed")
        self._rate_limited = meter.create_counter("visiongate.rate_limit.rejections")
        self._media_rejected = meter.create_counter("visiongate.media.rejections")
        self._triton_errors = meter.create_counter("visiongate.triton.errors")
        self._limiter_state: dict[str, float] = {}
        meter.create_observable_gauge(
            "visiongate.limiter.degraded_admissions", [self._observe("degraded")]
        )
        meter.create_observable_gauge(
            "visiongate.limiter.redis_reachable", [self._observe("redis_reachable")]
        )

    def _observe(self, name: str) -> Any:
        def callback(options: CallbackOptions) -> list[Observation]:
            value = self._limiter_state.get(name)
            return [] if value is None else [Observation(value)]

        return callback

    def request(
        self,
        route: str,
        status: int,
        model: str,
        tier: str,
        duration_s: float,
        ttft_s: float | None,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        """One finished HTTP request."""
        series = self._labelled
        series("requests", route, str(status), model, tier).inc()
        series("duration", route, model, tier).observe(duration_s)
        if status == 429:
            series("rate_limited", model, tier).inc()
        if ttft_s is not None:
            series("ttft", model, tier).observe(ttft_s)
        for kind, count in (("input", input_tokens), ("output", output_tokens)):
            if count:
                series("tokens", model, tier, kind).inc(count)
        if not self._otel:
            return
        attrs = {"route": route, "status": str(status), "model": model, "tier": tier}
        self._requests.add(1, attrs)
        self._duration.record(duration_s, {"route": route, "model": model, "tier": tier})
        if status == 429:
            self._rate_limited.add(1, {"model": model, "tier": tier})
        if ttft_s is not None:
            self._ttft.record(ttft_s, {"gen_ai.request.model": model, "tier": tier})
        for kind, count in (("input", input_tokens), ("output", output_tokens)):
            if count:
                self._tokens.add(count, {"model": model, "tier": tier, "type": kind})

    def _labelled(self, name: str, *labels: str) -> Any:
        """The Prometheus instrument ``name``'s series for ``labels``, created once."""
        key = (name, *labels)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._prom[name].labels(*labels)
        return series

    def media_rejected(self, rule: str) -> None:
        """Media intake refused a request under ``rule`` (the error code)."""
        self._prom["media_rejected"].labels(rule).inc()
        self._media_rejected.add(1, {"rule": rule})

    def triton_error(self, server: str, reason: str) -> None:
        """A call to one Triton server failed."""
        self._prom["triton_errors"].labels(server, reason).inc()
        self._triton_errors.add(1, {"server": server, "reason": reason})

    def triton_up(self, server: str, up: bool) -> None:
        """A server's health as this worker sees it."""
        self._prom["triton_up"].labels(server).set(1 if up else 0)

    def limiter(self, degraded_admissions: int, redis_reachable: bool) -> None:
        """The limiter's degraded state (``services.limiter.health()``)."""
        self._limiter_state = {
            "degraded": degraded_admissions,
            "redis_reachable": 1 if redis_reachable else 0,
        }
        self._prom["degraded"].set(degraded_admissions)
        self._prom["redis_reachable"].set(1 if redis_reachable else 0)
