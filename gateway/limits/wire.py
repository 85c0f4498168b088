"""Groq's wire format for limits: x-ratelimit-* headers, retry-after, 429/413/503 bodies."""

from __future__ import annotations

import math
from typing import Any

from gateway.limits.decision import Decision, Violation
from gateway.limits.limiter import LimiterUnavailable
from gateway.limits.policy import LIMIT_NAMES


def format_duration(seconds: float) -> str:
    """A duration as Groq writes it (Go's time.Duration, 10 ms steps): ``2m59.56s``, ``7.66s``."""
    centis = max(0, math.ceil(seconds * 100 - 1e-6))
    if centis == 0:
        return "0s"
    if centis < 100:
        return f"{centis * 10}ms"
    hours, rest = divmod(centis, 360_000)
    minutes, rest = divmod(rest, 6_000)
    whole, fraction = divmod(rest, 100)
    secs = f"{whole}.{fraction:02d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The x-ratelimit-* headers for any authenticated response; retry-after on 429 only.

    Requests are the per-day window and tokens the per-minute window, as Groq reports them;
    a limit that is unlimited for this tier has no headers.
    """
    headers: dict[str, str] = {}
    for name, window in (("requests", decision.requests), ("tokens", decision.tokens)):
        if window is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{name}"] = format_duration(window.reset_s)
    if decision.status_code == 429 and decision.violation is not None:
        headers["retry-after"] = str(max(1, math.ceil(decision.violation.retry_after_s)))
    return headers


def _error(message: str, type_: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _message(violation: Violation, model: str, organisation: str) -> str:
    where = f"for model `{model}` in organization `{organisation}`"
    name = LIMIT_NAMES[violation.kind]
    if violation.kind == "monthly_tokens":
        return (
            f"You exceeded your current quota {where} on {name}: Limit {violation.limit}, "
            f"Used {violation.used}, Requested {violation.requested}. "
            f"The quota resets in {format_duration(violation.retry_after_s)}."
        )
    return (
        f"Rate limit reached {where} on {name}: Limit {violation.limit}, "
        f"Used {violation.used}, Requested {violation.requested}. "
        f"Please try again in {format_duration(violation.retry_after_s)}."
    )


def error_body(decision: Decision, model: str, organisation: str) -> dict[str, Any]:
    """The JSON body of a refused admission (413 or 429)."""
    violation = decision.violation
    if violation is None:
        raise ValueError("the request was admitted: there is no error body")
    if decision.too_large:
        name = LIMIT_NAMES[violation.kind]
        return _error(
            f"Request too large for model `{model}` in organization `{organisation}` on "
            f"{name}: Limit {violation.limit}, Requested {violation.requested}, please "
            "reduce your message size and try again.",
            "tokens",
            "rate_limit_exceeded",
        )
    message = _message(violation, model, organisation)
    if violation.type == "insufficient_quota":
        return _error(message, "insufficient_quota", "insufficient_quota")
    return _error(message, violation.type, "rate_limit_exceeded")


def unavailable_body(error: LimiterUnavailable) -> tuple[dict[str, Any], dict[str, str]]:
    """The 503 body and headers when Redis is down and the limiter fails closed."""
    body = _error(
        "The rate limiter is unavailable; try again shortly.",
        "service_unavailable",
        error.code,
    )
    return body, {"retry-after": str(max(1, math.ceil(error.retry_after_s)))}
