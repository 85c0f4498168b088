"""A circuit breaker for the Redis limiter: a slow call is not an outage, many failed ones are."""

from __future__ import annotations

from collections.abc import Callable


class CircuitBreaker:
    """Closed until ``threshold`` calls fail in a row; then open: no calls, but one trial every
    ``retry_interval_s`` (half-open). A trial that succeeds closes it, one that fails keeps it
    open. A success while closed forgets earlier failures.
    """

    def __init__(
        self, threshold: int, retry_interval_s: float, monotonic: Callable[[], float]
    ) -> None:
        if threshold < 1:
            raise ValueError(f"the breaker opens after at least 1 failure, not {threshold}")
        self.failures = 0
        self.opened_at: float | None = None
        self._threshold = threshold
        self._retry_interval_s = retry_interval_s
        self._monotonic = monotonic
        self._next_trial = 0.0

    @property
    def closed(self) -> bool:
        """Whether calls go through (possibly after some failures, fewer than the threshold)."""
        return self.opened_at is None

    def allow(self) -> bool:
        """Whether a call may be made now; while open, True once per retry interval."""
        if self.opened_at is None:
            return True
        now = self._monotonic()
        if now < self._next_trial:
            return False
        self._next_trial = now + self._retry_interval_s
        return True

    def succeeded(self) -> float | None:
        """Record a success; when it closed the breaker, how long the breaker was open."""
        self.failures = 0
        if self.opened_at is None:
            return None
        open_s = self._monotonic() - self.opened_at
        self.opened_at = None
        return open_s

    def failed(self) -> bool:
        """Record a failure; True when this one opened the breaker."""
        self.failures += 1
        if self.opened_at is not None or self.failures < self._threshold:
            return False
        self.opened_at = self._monotonic()
        self._next_trial = self.opened_at + self._retry_interval_s
        return True
