"""Groq's wire format for the limiter's decisions: x-ratelimit-* headers and the 429/413/503s.

The limits package decides (:class:`~gateway.limits.Decision`); this module is the one
place that says it over HTTP: the headers every admitted or refused response carries, the
status, and each error's message.
"""

from __future__ import annotations

import math

from gateway.errors import ApiError
from gateway.limits import Decision, Violation

# Groq's wording, used in 429 and 413 messages.
LIMIT_NAMES = {
    "rpm": "requests per minute (RPM)",
    "rpd": "requests per day (RPD)",
    "tpm": "tokens per minute (TPM)",
    "tpd": "tokens per day (TPD)",
    "concurrency": "concurrent requests",
    "monthly_tokens": "monthly tokens",
}


class Refused(ApiError):
    """A limit or the quota says no (429), or the request alone exceeds a limit (413)."""

    code = "rate_limit_exceeded"


class LimiterDown(ApiError):
    """Redis is unreachable and the limiter is set to fail closed (503).

    ``retry_after_s``: a :class:`~gateway.limits.LimiterUnavailable`'s, or the settings'.
    """

    status_code = 503
    type = "service_unavailable"
    code = "rate_limiter_unavailable"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            "The rate limiter is unavailable (Redis unreachable, limits fail closed); "
            "try again shortly.",
            headers={"retry-after": str(max(1, math.ceil(retry_after_s)))},
        )


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


def status_code(decision: Decision) -> int:
    """200 when allowed, 413 for a request larger than a token limit, else 429."""
    if decision.violation is None:
        return 200
    return 413 if decision.too_large else 429


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
    if status_code(decision) == 429 and decision.violation is not None:
        headers["retry-after"] = str(max(1, math.ceil(decision.violation.retry_after_s)))
    return headers


def _error_type(violation: Violation) -> str:
    """``requests``, ``tokens`` or ``insufficient_quota``."""
    if violation.kind == "monthly_tokens":
        return "insufficient_quota"
    return "tokens" if violation.kind in ("tpm", "tpd") else "requests"


def _message(violation: Violation, where: str) -> str:
    name = LIMIT_NAMES[violation.kind]
    numbers = f"Limit {violation.limit}, Used {violation.used}, Requested {violation.requested}"
    wait = format_duration(violation.retry_after_s)
    if violation.kind == "monthly_tokens":
        return (
            f"You exceeded your current quota {where} on {name}: {numbers}. "
            f"The quota resets in {wait}."
        )
    return f"Rate limit reached {where} on {name}: {numbers}. Please try again in {wait}."


def refusal(decision: Decision, model: str, organisation: str) -> Refused:
    """The error of a refused admission (413 or 429), with the rate-limit headers."""
    violation = decision.violation
    if violation is None:
        raise ValueError("the request was admitted: there is no refusal")
    where = f"for model `{model}` in organization `{organisation}`"
    if decision.too_large:
        message = (
            f"Request too large {where} on {LIMIT_NAMES[violation.kind]}: Limit "
            f"{violation.limit}, Requested {violation.requested}, please reduce your message "
            "size and try again."
        )
        error_type = "tokens"
    else:
        message, error_type = _message(violation, where), _error_type(violation)
    code = "insufficient_quota" if error_type == "insufficient_quota" else None
    error = Refused(message, code=code, headers=rate_limit_headers(decision))
    error.status_code = status_code(decision)
    error.type = error_type
    return error
