"""GCRA (the generic cell rate algorithm), the arithmetic both limiter backends share.

A limit of L per period T has an emission interval T/L; the state is one number, the
theoretical arrival time (TAT). A request of cost c moves TAT to max(TAT, now) + c·T/L and
is allowed when that is at most now + T. So a burst of exactly L is admitted from a full
bucket, never L + 1, and capacity comes back continuously (Groq's "resets to its initial
state"). Times are in milliseconds, as in the Lua scripts.
"""

from __future__ import annotations

import math

# Tolerance for float rounding, so the L-th request of a burst is not refused by 1e-12 ms.
EPS_MS = 0.001


def emission_ms(limit: int, period_ms: float) -> float:
    """Milliseconds of capacity one unit of cost uses."""
    return period_ms / limit


def next_tat(tat: float | None, now: float, limit: int, period_ms: float, cost: int) -> float:
    """The TAT after admitting ``cost`` units."""
    return max(tat or now, now) + cost * emission_ms(limit, period_ms)


def retry_after_ms(new_tat: float, now: float, period_ms: float) -> float:
    """How long until a request that would move TAT to ``new_tat`` fits; 0 if it fits now."""
    wait = new_tat - period_ms - now
    return wait if wait > EPS_MS else 0.0


# Both below allow EPS_MS as admission does. TATs are epoch milliseconds (~1.7e12), whose
# doubles are only exact to ~2.4e-4 ms: a bucket holding 6 tokens at 0.6 ms each can read as
# 3.6002 ms busy, and a tolerance in units (1e-9) rather than time reported one too few.


def used(tat: float | None, now: float, limit: int, period_ms: float) -> int:
    """Units of capacity currently in use."""
    busy = max((tat or now) - now, 0.0)
    return max(0, min(limit, math.ceil((busy - EPS_MS) / emission_ms(limit, period_ms))))


def remaining(tat: float | None, now: float, limit: int, period_ms: float) -> int:
    """Units that could be admitted right now: the largest cost ``retry_after_ms`` lets in."""
    busy = max((tat or now) - now, 0.0)
    return max(0, math.floor((period_ms - busy + EPS_MS) / emission_ms(limit, period_ms)))


def reset_ms(tat: float | None, now: float) -> float:
    """Milliseconds until the limit is full again."""
    return max((tat or now) - now, 0.0)
