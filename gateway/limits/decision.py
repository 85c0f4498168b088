"""What an admission returns: allowed or the limit it broke, and the numbers for the headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.limits.policy import LimitSet

LimitKind = Literal["rpm", "rpd", "tpm", "tpd", "concurrency", "monthly_tokens"]
# Order of the limits in the raw result both backends produce (index 1..6, as in Lua).
KINDS: tuple[LimitKind, ...] = ("rpm", "rpd", "tpm", "tpd", "concurrency", "monthly_tokens")


@dataclass(frozen=True, slots=True)
class Window:
    """One rate limit's state for the headers: limit, what is left, time until full again."""

    limit: int
    remaining: int
    reset_s: float


@dataclass(frozen=True, slots=True)
class Violation:
    """The limit that refused a request, with the numbers its error message names."""

    kind: LimitKind
    limit: int
    used: int
    requested: int
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """What an admitted request holds until ``finish``: reserved tokens and a concurrency lease."""

    id: str
    org_id: int
    model: str
    limits: LimitSet
    tokens: int
    month: str
    backend: str

    @property
    def lease_id(self) -> str | None:
        """The concurrency lease's member in the lease set, when concurrency is limited."""
        return self.id if self.limits.concurrency is not None else None


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one admission: allowed, refused, or ``too_large`` (no limit would ever
    admit a request that size).

    ``requests`` is the per-day request window and ``tokens`` the per-minute token window,
    as Groq's x-ratelimit-* headers report them (None when that limit is unlimited).
    """

    requests: Window | None
    tokens: Window | None
    violation: Violation | None = None
    too_large: bool = False
    reservation: Reservation | None = None

    @property
    def allowed(self) -> bool:
        """Whether the request may go ahead."""
        return self.violation is None
