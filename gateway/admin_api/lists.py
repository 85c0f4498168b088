"""Pagination of admin lists the OpenAI way: ``limit`` and ``after``, ``has_more`` back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, TypeVar

from litestar.params import Parameter

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

PageLimit = Annotated[
    int, Parameter(ge=1, le=MAX_LIMIT, description=f"items per page, 1 to {MAX_LIMIT}")
]


def split_page(rows: Sequence[T], limit: int) -> tuple[list[T], bool]:
    """The page (the first ``limit`` rows) and whether more follow (a row was fetched beyond)."""
    return list(rows[:limit]), len(rows) > limit
