"""What limits apply: one tier's numbers for one model (None means unlimited)."""

from __future__ import annotations

from dataclasses import dataclass, fields

MINUTE_S = 60.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class LimitSet:
    """Per organisation per model: requests and tokens per minute and day, concurrency, month."""

    rpm: int | None = None
    rpd: int | None = None
    tpm: int | None = None
    tpd: int | None = None
    concurrency: int | None = None
    monthly_tokens: int | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None and value < 1:
                raise ValueError(f"{field.name} must be at least 1 or unlimited, not {value}")


UNLIMITED = LimitSet()
