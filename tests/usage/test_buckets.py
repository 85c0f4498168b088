"""Usage buckets summed in SQL on SQLite and PostgreSQL: boundaries, groups, pages, CSV."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.usage.buckets import (
    BadUsageQuery,
    UsageQuery,
    bucket_totals,
    encode_page,
    key_public_id,
    usage_page,
)
from gateway.usage.export import COLUMNS, usage_csv
from tests.support.database import new_key
from tests.support.usage import record_all, usage_at

# 2026-11-02 00:00:00 UTC, a Monday.
DAY0 = 1_793_577_600
DAY = 86_400


async def _two_keys(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int, int, int]:
    first = await new_key(sessions, "acme")
    second = await new_key(sessions, "acme")
    other = await new_key(sessions, "other")
    return first.key.org_id, first.key.id, second.key.id, other.key.id


async def test_each_record_lands_in_the_bucket_of_its_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    org, key, _, _ = await _two_keys(sessions)
    await record_all(
        sessions,
        [
            usage_at(org, key, DAY0 - 0.001, prompt=1000),  # before the range
            usage_at(org, key, DAY0, prompt=1),  # first instant of minute 0
            usage_at(org, key, DAY0 + 59.999, prompt=2),  # last instant of minute 0
            usage_at(org, key, DAY0 + 30, prompt=0, completion=0, images=2),  # never charged
            usage_at(org, key, DAY0 + 60, prompt=4),  # first instant of minute 1
            usage_at(org, key, DAY0 + 179.5, prompt=8),  # minute 2
            usage_at(org, key, DAY0 + 180, prompt=2000),  # end_time: excluded
        ],
    )
    query = UsageQuery(org, DAY0, DAY0 + 180, "1m")
    async with sessions() as session:
        buckets = await bucket_totals(session, query, query.all_buckets())
    assert [(b.start_time, b.end_time) for b in buckets] == [
        (DAY0, DAY0 + 60),
        (DAY0 + 60, DAY0 + 120),
        (DAY0 + 120, DAY0 + 180),
    ]
    assert [[(r.input_tokens, r.num_model_requests) for r in b.results] for b in buckets] == [
        [(3, 2)],
        [(4, 1)],
        [(8, 1)],
    ]


async def test_day_buckets_split_at_utc_midnight_and_empty_days_have_no_results(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    org, key, _, _ = await _two_keys(sessions)
    await record_all(
        sessions,
        [
            usage_at(org, key, DAY0 + DAY - 0.001, prompt=10, completion=1, images=2),
            usage_at(org, key, DAY0 + DAY, prompt=20, completion=2, video_frames=8),
            usage_at(org, key, DAY0 + 3 * DAY + 5, prompt=30, completion=3),
        ],
    )
    query = UsageQuery(org, DAY0, DAY0 + 4 * DAY, "1d")
    async with sessions() as session:
        page = await usage_page(session, query)
    totals = [
        [(r.input_tokens, r.output_tokens, r.images, r.video_frames) for r in b.results]
        for b in page.data
    ]
    assert totals == [[(10, 1, 2, 0)], [(20, 2, 0, 8)], [], [(30, 3, 0, 0)]]
    assert page.has_more is False and page.next_page is None
    result = page.data[0].results[0]
    assert (result.model, result.api_key_id, result.object) == (
        None,
        None,
        "organization.usage.completions.result",
    )


async def test_group_by_model_and_key_and_only_the_organisations_own(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    org, key1, key2, other_key = await _two_keys(sessions)
    other = await new_key(sessions, "other")
    await record_all(
        sessions,
        [
            usage_at(org, key1, DAY0 + 10, model="b", prompt=1, completion=1),
            usage_at(org, key1, DAY0 + 20, model="a", prompt=2, completion=2),
            usage_at(org, key2, DAY0 + 30, model="a", prompt=4, completion=4),
            usage_at(org, key2, DAY0 + 40, model="a", prompt=8, completion=8),
            usage_at(other.key.org_id, other_key, DAY0 + 50, model="a", prompt=99),
        ],
    )
    by_model = UsageQuery(org, DAY0, DAY0 + DAY, group_by=("model",))
    by_both = UsageQuery(org, DAY0, DAY0 + DAY, group_by=("model", "api_key_id"))
    only_a_key2 = UsageQuery(org, DAY0, DAY0 + DAY, models=("a",), api_key_ids=(key2,))
    async with sessions() as session:
        models = (await usage_page(session, by_model)).data[0].results
        both = (await usage_page(session, by_both)).data[0].results
        filtered = (await usage_page(session, only_a_key2)).data[0].results
    assert [(r.model, r.api_key_id, r.num_model_requests, r.input_tokens) for r in models] == [
        ("a", None, 3, 14),
        ("b", None, 1, 1),
    ]
    assert [(r.model, r.api_key_id, r.num_model_requests) for r in both] == sorted(
        [
            ("a", key_public_id(key1), 1),
            ("a", key_public_id(key2), 2),
            ("b", key_public_id(key1), 1),
        ]
    )
    assert [(r.input_tokens, r.num_model_requests) for r in filtered] == [(12, 2)]


async def test_pages_follow_their_cursors_to_the_end(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    org, key, _, _ = await _two_keys(sessions)
    await record_all(sessions, [usage_at(org, key, DAY0 + 3600 * hour) for hour in range(5)])
    query = UsageQuery(org, DAY0, DAY0 + 5 * 3600, "1h", limit=2)
    starts: list[int] = []
    cursors: list[str | None] = []
    async with sessions() as session:
        while True:
            page = await usage_page(session, query)
            assert len(page.data) <= 2
            starts += [bucket.start_time for bucket in page.data]
            assert all(len(bucket.results) == 1 for bucket in page.data)
            cursors.append(page.next_page)
            if not page.has_more:
                break
            query = UsageQuery(org, DAY0, DAY0 + 5 * 3600, "1h", limit=2, page=page.next_page)
    assert starts == [DAY0 + 3600 * hour for hour in range(5)]
    assert cursors == [encode_page(DAY0 + 2 * 3600), encode_page(DAY0 + 4 * 3600), None]


async def test_the_csv_export_parses_back_to_the_buckets(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    org, key1, key2, _ = await _two_keys(sessions)
    await record_all(
        sessions,
        [
            usage_at(org, key1, DAY0 + 5, model="a", prompt=3, completion=1, images=1),
            usage_at(org, key2, DAY0 + DAY + 5, model="b", prompt=7, video_frames=4),
        ],
    )
    query = UsageQuery(org, DAY0, DAY0 + 3 * DAY, group_by=("model", "api_key_id"))
    async with sessions() as session:
        buckets = await bucket_totals(session, query, query.all_buckets())
    rows = list(csv.DictReader(io.StringIO(usage_csv(buckets))))
    assert tuple(rows[0]) == COLUMNS
    expected = [
        {
            "start_time": str(bucket.start_time),
            "model": result.model,
            "api_key_id": result.api_key_id,
            "num_model_requests": str(result.num_model_requests),
            "input_tokens": str(result.input_tokens),
            "output_tokens": str(result.output_tokens),
            "images": str(result.images),
            "video_frames": str(result.video_frames),
        }
        for bucket in buckets
        for result in bucket.results
    ]
    assert [{name: row[name] for name in expected[0]} for row in rows] == expected
    assert [row["start_time_iso"] for row in rows] == [
        "2026-11-02T00:00:00Z",
        "2026-11-03T00:00:00Z",
    ]
    assert {row["organization"] for row in rows} == {""}


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"end_time": DAY0}, "end_time"),  # end == start
        ({"end_time": DAY0 - 1}, "end_time"),
        ({"start_time": -1}, "start_time"),
        ({"end_time": 10**12}, "end_time"),  # past the year 9999
        ({"end_time": DAY0 + 3661 * DAY}, "end_time"),  # too large for 1d
        ({"bucket_width": "1m", "end_time": DAY0 + 8 * DAY}, "end_time"),  # too large for 1m
        ({"bucket_width": "2h"}, "bucket_width"),
        ({"limit": 0}, "limit"),
        ({"limit": 32}, "limit"),  # 1d allows 31
        ({"bucket_width": "1h", "limit": 169}, "limit"),
        ({"page": "nonsense"}, "page"),
        ({"page": encode_page(DAY0 + 30)}, "page"),  # not a bucket start
        ({"page": encode_page(DAY0 + 40 * DAY)}, "page"),  # past the end
    ],
)
def test_bad_queries_name_the_parameter(arguments: dict[str, object], param: str) -> None:
    fields: dict[str, object] = {"org_id": 1, "start_time": DAY0, "end_time": DAY0 + 31 * DAY}
    with pytest.raises(BadUsageQuery) as raised:
        UsageQuery(**(fields | arguments))  # type: ignore[arg-type]
    assert raised.value.param == param


def test_page_limits_default_like_openai() -> None:
    for width, default in (("1d", 7), ("1h", 24), ("1m", 60)):
        query = UsageQuery(1, DAY0, DAY0 + 31 * DAY if width == "1d" else DAY0 + DAY, width)  # type: ignore[arg-type]
        assert len(query.page_buckets()) == default
