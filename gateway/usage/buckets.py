"""Usage in time buckets, in the shape of OpenAI's usage API (``object: "page"`` of buckets).

A query covers ``[start_time, end_time)`` in buckets of ``bucket_width`` that begin at
``start_time`` (the last one ends at ``end_time``); a page holds ``limit`` of them, and
``page`` is the cursor of the next. Totals are summed in SQL, per bucket and per group
(model, API key, organisation), on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import msgspec
from sqlalchemy import BigInteger, ColumnElement, Integer, Select, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import Organisation, UsageRecord

BucketWidth = Literal["1m", "1h", "1d"]
GroupField = Literal["model", "api_key_id", "organization"]

WIDTHS: tuple[BucketWidth, ...] = get_args(BucketWidth)
WIDTH_S: dict[BucketWidth, int] = {"1m": 60, "1h": 3_600, "1d": 86_400}
# Buckets per page, default and maximum, as OpenAI's usage API has them.
PAGE_LIMITS: dict[BucketWidth, tuple[int, int]] = {
    "1m": (60, 1_440),
    "1h": (24, 168),
    "1d": (7, 31),
}
# The most buckets one query's range may hold (every page of it): 7, 366 and 3,660 days.
MAX_BUCKETS: dict[BucketWidth, int] = {"1m": 10_080, "1h": 8_784, "1d": 3_660}
# Times are Unix seconds from 1970 up to the year 9999.
MAX_TIME_S = 253_402_300_799
KEY_ID_PREFIX = "key_"
_PAGE_PREFIX = "page_"


class BadUsageQuery(ValueError):
    """A usage query that cannot be answered, naming the parameter at fault."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def key_public_id(key_id: int) -> str:
    """An API key's id as the usage API shows it (``key_12``)."""
    return f"{KEY_ID_PREFIX}{key_id}"


def parse_key_id(value: str) -> int | None:
    """The key id in ``key_12`` (or ``12``); None when it is neither."""
    digits = value.removeprefix(KEY_ID_PREFIX)
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 19 else None


def encode_page(start_s: int) -> str:
    """The opaque cursor of the page that begins at ``start_s``."""
    return _PAGE_PREFIX + base64.urlsafe_b64encode(str(start_s).encode()).decode().rstrip("=")


def decode_page(cursor: str) -> int:
    """The start of the page a cursor names; BadUsageQuery when it is not one of ours."""
    body = cursor.removeprefix(_PAGE_PREFIX)
    try:
        text = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not cursor.startswith(_PAGE_PREFIX) or not text.isdigit():
        raise BadUsageQuery("page", "`page` is not a cursor this API returned (`next_page`).")
    return int(text)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """What to count: a range, a bucket width, groups and filters; one page of it.

    ``org_id`` None counts every organisation (admin only).
    """

    org_id: int | None
    start_time: int
    end_time: int
    bucket_width: BucketWidth = "1d"
    group_by: tuple[GroupField, ...] = ()
    limit: int | None = None
    page: str | None = None
    models: tuple[str, ...] = ()
    api_key_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_TIME_S:
                raise BadUsageQuery(name, f"`{name}` must be Unix seconds from 0 to {MAX_TIME_S}.")
        if self.bucket_width not in WIDTH_S:
            raise BadUsageQuery(
                "bucket_width", f"`bucket_width` must be one of {', '.join(WIDTHS)}."
            )
        if self.end_time <= self.start_time:
            raise BadUsageQuery("end_time", "`end_time` must be after `start_time`.")
        most_buckets = MAX_BUCKETS[self.bucket_width]
        if self.bucket_count > most_buckets:
            days = most_buckets * self.width_s // 86_400
            raise BadUsageQuery(
                "end_time",
                f"The range is too large: {self.bucket_count} buckets of {self.bucket_width}; "
                f"one query may span at most {most_buckets} ({days} days).",
            )
        default, most = PAGE_LIMITS[self.bucket_width]
        if self.limit is not None and not 1 <= self.limit <= most:
            raise BadUsageQuery(
                "limit",
                f"`limit` must be from 1 to {most} with `bucket_width` {self.bucket_width} "
                f"(default {default}).",
            )
        if self.page is not None:
            first = decode_page(self.page)
            if (
                not self.start_time <= first < self.end_time
                or (first - self.start_time) % self.width_s
            ):
                raise BadUsageQuery(
                    "page", "`page` belongs to another query: repeat the query it came from."
                )

    @property
    def width_s(self) -> int:
        """The bucket width in seconds."""
        return WIDTH_S[self.bucket_width]

    @property
    def bucket_count(self) -> int:
        """Buckets in the whole range (the last may be shorter)."""
        return -(-(self.end_time - self.start_time) // self.width_s)

    def page_buckets(self) -> range:
        """The indices of this page's buckets, counted from ``start_time``."""
        first = 0 if self.page is None else (decode_page(self.page) - self.start_time)
        first //= self.width_s
        size = self.limit or PAGE_LIMITS[self.bucket_width][0]
        return range(first, min(first + size, self.bucket_count))

    def all_buckets(self) -> range:
        """Every bucket of the range, for an export of all of it."""
        return range(self.bucket_count)


class UsageResult(msgspec.Struct, kw_only=True):
    """One group's totals in one bucket; the fields not grouped by are null."""

    input_tokens: int
    output_tokens: int
    num_model_requests: int
    images: int
    video_frames: int
    model: str | None = None
    api_key_id: str | None = None
    # Only on the admin API, and only there when grouped by organisation.
    organization: str | msgspec.UnsetType | None = msgspec.UNSET
    # OpenAI's fields that have no counterpart here: no cached prompts, audio, projects.
    input_cached_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    project_id: None = None
    user_id: None = None
    batch: None = None
    object: str = "organization.usage.completions.result"


class UsageBucket(msgspec.Struct, kw_only=True):
    """One time bucket, ``[start_time, end_time)``; no usage in it: no results."""

    start_time: int
    end_time: int
    results: list[UsageResult]
    object: str = "bucket"


class UsagePage(msgspec.Struct, kw_only=True):
    """A page of buckets, and the cursor of the next when there is one."""

    data: list[UsageBucket]
    has_more: bool
    next_page: str | None
    object: str = "page"


def _epoch_seconds(dialect: str) -> ColumnElement[int]:
    """``started_at`` as whole Unix seconds, in the dialect's own functions."""
    if dialect == "sqlite":  # stored as UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'
        return cast(func.strftime("%s", UsageRecord.started_at), Integer)
    return cast(func.floor(func.extract("epoch", UsageRecord.started_at)), BigInteger)


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _totals_query(query: UsageQuery, buckets: range, dialect: str) -> Select[Any]:
    start = query.start_time + buckets.start * query.width_s
    end = min(query.start_time + buckets.stop * query.width_s, query.end_time)
    # Integer division of a non-negative offset: the bucket's index, counted from start_time.
    bucket = ((_epoch_seconds(dialect) - query.start_time) // query.width_s).label("bucket")
    groups: list[Any] = [bucket]  # columns and ORM attributes
    if "model" in query.group_by:
        groups.append(UsageRecord.model)
    if "api_key_id" in query.group_by:
        groups.append(UsageRecord.key_id)
    if "organization" in query.group_by:
        groups.append(Organisation.name)
    statement = select(
        *groups,
        func.count(UsageRecord.id),
        func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
        func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
        func.coalesce(func.sum(UsageRecord.images), 0),
        func.coalesce(func.sum(UsageRecord.video_frames), 0),
    ).where(
        UsageRecord.started_at >= _instant(start),
        UsageRecord.started_at < _instant(end),
        # A request the model never saw (refused by media intake, say) was charged nothing.
        UsageRecord.prompt_tokens + UsageRecord.completion_tokens > 0,
    )
    if "organization" in query.group_by:
        statement = statement.join(Organisation, UsageRecord.org_id == Organisation.id)
    if query.org_id is not None:
        statement = statement.where(UsageRecord.org_id == query.org_id)
    if query.models:
        statement = statement.where(UsageRecord.model.in_(query.models))
    if query.api_key_ids:
        statement = statement.where(UsageRecord.key_id.in_(query.api_key_ids))
    return statement.group_by(*groups)


def _count(value: Any) -> int:
    # A sum is an int on SQLite and may be a Decimal on PostgreSQL.
    return int(value)


def _result(query: UsageQuery, group: Sequence[object], totals: Sequence[object]) -> UsageResult:
    values = iter(group)
    model = str(next(values)) if "model" in query.group_by else None
    key_id = next(values) if "api_key_id" in query.group_by else None
    requests, prompt, completion, images, frames = (_count(value) for value in totals)
    result = UsageResult(
        input_tokens=prompt,
        output_tokens=completion,
        num_model_requests=requests,
        images=images,
        video_frames=frames,
        model=model,
        api_key_id=None if key_id is None else key_public_id(_count(key_id)),
    )
    if "organization" in query.group_by:
        result.organization = str(next(values))
    return result


def _sort_key(result: UsageResult) -> tuple[str, str, str]:
    organization = result.organization if isinstance(result.organization, str) else ""
    return (organization, result.model or "", result.api_key_id or "")


async def bucket_totals(
    session: AsyncSession, query: UsageQuery, buckets: range
) -> list[UsageBucket]:
    """The buckets ``buckets`` of the query, each with its groups' totals (sorted)."""
    dialect = session.get_bind().dialect.name
    found: dict[int, list[UsageResult]] = {index: [] for index in buckets}
    width = len(query.group_by) + 1
    for row in await session.execute(_totals_query(query, buckets, dialect)):
        index = _count(row[0])
        found[index].append(_result(query, row[1:width], row[width:]))
    return [
        UsageBucket(
            start_time=query.start_time + index * query.width_s,
            end_time=min(query.start_time + (index + 1) * query.width_s, query.end_time),
            results=sorted(results, key=_sort_key),
        )
        for index, results in found.items()
    ]


async def usage_page(session: AsyncSession, query: UsageQuery) -> UsagePage:
    """One page of the query's buckets, with ``next_page`` when more follow."""
    buckets = query.page_buckets()
    more = buckets.stop < query.bucket_count
    return UsagePage(
        data=await bucket_totals(session, query, buckets),
        has_more=more,
        next_page=encode_page(query.start_time + buckets.stop * query.width_s) if more else None,
    )
