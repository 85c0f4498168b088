"""Usage: one record per request, committed before the response ends; monthly totals."""

from gateway.usage.queries import MonthlyTokens, UsageRow, tokens_since, usage_summary
from gateway.usage.recorder import RecorderClosed, Usage, UsageRecorder

__all__ = [
    "MonthlyTokens",
    "RecorderClosed",
    "Usage",
    "UsageRecorder",
    "UsageRow",
    "tokens_since",
    "usage_summary",
]
