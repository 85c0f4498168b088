"""Rate limits and quotas per organisation per model (GCRA; Redis or in-process)."""

from gateway.limits.catalog import TierCatalog
from gateway.limits.decision import Decision, Reservation, Violation, Window
from gateway.limits.estimate import count_chat, estimate_prompt
from gateway.limits.limiter import LimiterHealth, LimiterUnavailable, RateLimiter
from gateway.limits.policy import LimitSet
from gateway.limits.wire import error_body, format_duration, rate_limit_headers, unavailable_body

__all__ = [
    "Decision",
    "LimitSet",
    "LimiterHealth",
    "LimiterUnavailable",
    "RateLimiter",
    "Reservation",
    "TierCatalog",
    "Violation",
    "Window",
    "count_chat",
    "error_body",
    "estimate_prompt",
    "format_duration",
    "rate_limit_headers",
    "unavailable_body",
]
