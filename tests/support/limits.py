"""Limiters for tests: in-process and real Redis (a fresh key prefix per test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from gateway.api.rate_limits import refusal
from gateway.limits import Decision, RateLimiter
from gateway.settings import Settings

LIMITER_BACKENDS = ("in-process", "redis")
# What the ``make_limiter`` fixture gives: build a limiter with settings overridden.
MakeLimiter = Callable[..., RateLimiter]


def settings_for(backend: str, redis_url: str | None, prefix: str, **overrides: object) -> Settings:
    """Settings for a limiter on the given backend."""
    url = redis_url if backend == "redis" else None
    return Settings(redis_url=url, redis_key_prefix=prefix, **overrides)  # type: ignore[arg-type]


def error_body(decision: Decision, model: str, organisation: str) -> dict[str, Any]:
    """The JSON body the API answers a refused admission with."""
    body: dict[str, Any] = msgspec.to_builtins(refusal(decision, model, organisation).body())
    return body
