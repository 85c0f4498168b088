"""Rate limits and quotas per organisation per model (GCRA; Redis or in-process).

The limiter returns decisions; what they look like over HTTP is the API's
(:mod:`gateway.api.rate_limits`).
"""

from gateway.limits.catalog import TierCatalog
from gateway.limits.decision import Decision, Reservation, Violation, Window
from gateway.limits.estimate import estimate_prompt
from gateway.limits.limiter import LimiterHealth, LimiterUnavailable, RateLimiter
from gateway.limits.policy import LimitSet

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
    "estimate_prompt",
]
