"""The flat result both backends return (a Lua reply can only carry integers), and its reading."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.limits.decision import KINDS, Decision, Reservation, Violation, Window

NONE = -1  # "not applicable" in a raw result: unlimited, or no violation

# Raw result: [denied, kind (1-based index into KINDS), limit, used, retry_ms,
#              rpd_remaining, rpd_reset_ms, tpm_remaining, tpm_reset_ms]


def _window(limit: int | None, remaining: int, reset_ms: int) -> Window | None:
    if limit is None or remaining == NONE:
        return None
    return Window(limit=limit, remaining=int(remaining), reset_s=reset_ms / 1000)


def read_result(raw: Sequence[int], reservation: Reservation, requested_tokens: int) -> Decision:
    """Turn a raw result into a Decision; the reservation is kept only when admitted."""
    denied, kind_index, limit, used, retry_ms, rpd_rem, rpd_reset, tpm_rem, tpm_reset = (
        int(value) for value in raw
    )
    requests = _window(reservation.limits.rpd, rpd_rem, rpd_reset)
    tokens = _window(reservation.limits.tpm, tpm_rem, tpm_reset)
    if not denied:
        return Decision(requests, tokens, reservation=reservation)
    kind = KINDS[kind_index - 1]
    requested = requested_tokens if kind in ("tpm", "tpd", "monthly_tokens") else 1
    violation = Violation(kind, limit, used, requested, retry_ms / 1000)
    return Decision(requests, tokens, violation=violation)
