"""``GET /v1/organization/usage`` and ``/limits`` through `visiongate serve` (2 workers), on
SQLite and PostgreSQL: chats made with the `openai` SDK show up in the buckets; rows at known
times land in the right ones; every bad parameter is a 400 naming it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from openai import AsyncOpenAI

from gateway.db.engine import session_factory
from gateway.usage.buckets import key_public_id
from tests.support.admin import AdminStack
from tests.support.chat import MODEL, image_message
from tests.support.usage import USAGE_ORGS, Provisioned, record_all, usage_at

# 2026-10-05 00:00:00 UTC; the history tests' rows are in the days after it.
DAY0 = 1_791_158_400
DAY = 86_400


def customer(stack: AdminStack, key: str) -> AsyncOpenAI:
    """The `openai` SDK with an API key, for chats and (as its "admin key") the usage API."""
    return AsyncOpenAI(
        base_url=stack.main.url + "/v1", api_key=key, admin_api_key=key, max_retries=0, timeout=60
    )


async def usage(stack: AdminStack, key: str, **params: Any) -> dict[str, Any]:
    """One page of ``/v1/organization/usage``, as JSON."""
    async with stack.http(key) as http:
        response = await http.get("/v1/organization/usage", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_chats_through_the_sdk_are_counted_per_model_and_key(
    stack: AdminStack, orgs: dict[str, Provisioned]
) -> None:
    org = orgs["us-chat"]
    (first_id, first), (second_id, second) = org.keys
    since = int(time.time()) - 60
    prompt = completion = 0
    for key, message in ((first, {"role": "user", "content": "Hi"}), (first, image_message())):
        async with customer(stack, key) as client:
            answer = await client.chat.completions.create(
                model=MODEL,
                messages=[message],  # type: ignore[list-item]
                max_tokens=3,
                temperature=0,
            )
        assert answer.usage is not None
        prompt += answer.usage.prompt_tokens
        completion += answer.usage.completion_tokens
    async with customer(stack, second) as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=2
        )
        assert answer.usage is not None
        prompt += answer.usage.prompt_tokens
        completion += answer.usage.completion_tokens

        # The SDK's own usage call (OpenAI's admin API), at /v1/organization/usage/completions.
        page = await client.admin.organization.usage.completions(
            start_time=since, bucket_width="1h", group_by=["model", "api_key_id"]
        )
    assert page.object == "page" and page.has_more is False and page.next_page is None
    [bucket] = page.data
    assert (bucket.start_time, bucket.end_time) == (since, since + 3600)
    results = [result.to_dict() for result in bucket.results]
    assert [(r["model"], r["api_key_id"], r["num_model_requests"]) for r in results] == [
        (MODEL, key_public_id(first_id), 2),
        (MODEL, key_public_id(second_id), 1),
    ]
    assert sum(r["input_tokens"] for r in results) == prompt
    assert sum(r["output_tokens"] for r in results) == completion
    assert [r["images"] for r in results] == [1, 0]
    assert all(r["object"] == "organization.usage.completions.result" for r in results)

    # Ungrouped, and under /openai (the Groq SDK's prefix): one total.
    async with stack.http(first) as http:
        response = await http.get(
            "/openai/v1/organization/usage", params={"start_time": since, "bucket_width": "1h"}
        )
    [total] = response.json()["data"][0]["results"]
    assert (total["num_model_requests"], total["input_tokens"], total["images"]) == (3, prompt, 1)
    assert (total["model"], total["api_key_id"]) == (None, None)


async def test_rows_at_known_times_fill_their_buckets_page_by_page(
    stack: AdminStack, orgs: dict[str, Provisioned]
) -> None:
    org, other = orgs["us-history"], orgs["us-other"]
    key_id, key = org.keys[0]
    await record_all(
        session_factory(stack.engine),
        [
            usage_at(org.org_id, key_id, DAY0 - 1, prompt=500),  # the day before: not counted
            usage_at(org.org_id, key_id, DAY0, model=MODEL, prompt=1, completion=1),
            usage_at(org.org_id, key_id, DAY0 + DAY - 0.001, model="m2", prompt=2, images=3),
            usage_at(org.org_id, key_id, DAY0 + DAY, model=MODEL, prompt=4, video_frames=6),
            usage_at(org.org_id, key_id, DAY0 + 4 * DAY + 1, model=MODEL, prompt=8),
            usage_at(other.org_id, other.keys[0][0], DAY0 + 5, prompt=1_000),  # another org
        ],
    )
    window = {"start_time": DAY0, "end_time": DAY0 + 5 * DAY, "group_by": "model", "limit": 2}
    pages = [await usage(stack, key, **window)]
    while pages[-1]["has_more"]:
        pages.append(await usage(stack, key, **window, page=pages[-1]["next_page"]))
    assert [len(page["data"]) for page in pages] == [2, 2, 1]
    assert pages[-1]["next_page"] is None
    buckets = [bucket for page in pages for bucket in page["data"]]
    assert [b["start_time"] for b in buckets] == [DAY0 + day * DAY for day in range(5)]
    assert all(b["end_time"] - b["start_time"] == DAY for b in buckets)
    fields = ("model", "num_model_requests", "input_tokens", "images")
    summary = [[tuple(r[name] for name in fields) for r in b["results"]] for b in buckets]
    assert summary == [
        [("m2", 1, 2, 3), (MODEL, 1, 1, 0)],  # sorted by model
        [(MODEL, 1, 4, 0)],
        [],
        [],
        [(MODEL, 1, 8, 0)],
    ]
    assert buckets[1]["results"][0]["video_frames"] == 6

    # One-minute buckets: the first instant of a day is in its first minute.
    minute = {"start_time": DAY0 + DAY - 60, "end_time": DAY0 + DAY + 120, "bucket_width": "1m"}
    minutes = await usage(stack, key, **minute, limit=2)
    assert [[r["input_tokens"] for r in b["results"]] for b in minutes["data"]] == [[2], [4]]
    assert minutes["has_more"] is True
    # Filtered by model, and by key (another key of the organisation has no usage).
    only_m2 = await usage(stack, key, start_time=DAY0, end_time=DAY0 + DAY, models="m2")
    assert [r["input_tokens"] for r in only_m2["data"][0]["results"]] == [2]
    unused_key = key_public_id(org.keys[1][0])
    by_key = await usage(stack, key, start_time=DAY0, end_time=DAY0 + DAY, api_key_ids=unused_key)
    assert by_key["data"][0]["results"] == []


async def test_usage_needs_a_key_and_shows_only_its_organisation(
    stack: AdminStack, orgs: dict[str, Provisioned]
) -> None:
    since = {"start_time": DAY0, "end_time": DAY0 + DAY}
    async with stack.http(None) as http:
        for path in ("/v1/organization/usage", "/v1/organization/limits"):
            missing = await http.get(path, params=since)
            assert missing.status_code == 401, path
            assert missing.json()["error"]["code"] == "invalid_api_key"
    async with stack.http(stack.token) as http:  # an admin token is not an API key
        assert (await http.get("/v1/organization/usage", params=since)).status_code == 401
    other = await usage(stack, orgs["us-other"].keys[1][1], **since)
    assert [r["input_tokens"] for r in other["data"][0]["results"]] == [1_000]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({}, "start_time"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"start_time": "1.5"}, "start_time"),
        ({"start_time": -5}, "start_time"),
        ({"start_time": 4_102_444_800}, "start_time"),  # 2100, and no end_time: in the future
        ({"start_time": DAY0, "end_time": "soon"}, "end_time"),
        ({"start_time": DAY0, "end_time": DAY0 - DAY}, "end_time"),
        ({"start_time": DAY0, "end_time": DAY0}, "end_time"),
        ({"start_time": DAY0, "end_time": DAY0 + 9 * DAY, "bucket_width": "1m"}, "end_time"),
        ({"start_time": DAY0, "end_time": DAY0 + 400 * DAY, "bucket_width": "1h"}, "end_time"),
        ({"start_time": DAY0, "bucket_width": "1w"}, "bucket_width"),
        ({"start_time": DAY0, "limit": 0}, "limit"),
        ({"start_time": DAY0, "limit": 32}, "limit"),
        ({"start_time": DAY0, "limit": "many"}, "limit"),
        (
            {"start_time": DAY0, "end_time": DAY0 + DAY, "bucket_width": "1m", "limit": 1441},
            "limit",
        ),
        ({"start_time": DAY0, "page": "page_bm90LWEtcGFnZQ"}, "page"),
        ({"start_time": DAY0, "group_by": "project_id"}, "group_by"),
        ({"start_time": DAY0, "group_by": "organization"}, "group_by"),  # admin only
        ({"start_time": DAY0, "api_key_ids": "vg_secret"}, "api_key_ids"),
    ],
)
async def test_bad_parameters_are_400s_naming_them(
    stack: AdminStack, orgs: dict[str, Provisioned], params: dict[str, Any], param: str
) -> None:
    async with stack.http(orgs["us-other"].keys[0][1]) as http:
        response = await http.get("/v1/organization/usage", params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"
    assert error["code"] in ("invalid_value", "missing_required_parameter")
    assert param in error["message"] or "range" in error["message"]


async def test_limits_show_the_tier_and_what_a_request_used(
    stack: AdminStack, orgs: dict[str, Provisioned]
) -> None:
    key = orgs["us-limits"].keys[0][1]
    tier = USAGE_ORGS["us-limits"]

    async def limits() -> dict[str, Any]:
        async with stack.http(key) as http:
            response = await http.get("/v1/organization/limits")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert (body["object"], body["organization"], body["tier"]) == (
            "organization.limits",
            "us-limits",
            "us-limits",
        )
        [model] = body["data"]
        assert model["model"] == MODEL
        return model

    before = await limits()
    for name, value in tier.items():
        assert before[name]["limit"] == value, name
        assert before[name]["remaining"] == value, name
    async with customer(stack, key) as client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
    assert answer.usage is not None
    used = answer.usage.total_tokens
    # Both workers read the same limits in Redis: ask a few times, any worker answers alike.
    for _ in range(4):
        after = await limits()
        assert after["rpm"]["remaining"] == tier["rpm"] - 1
        assert after["rpd"]["remaining"] == tier["rpd"] - 1
        assert after["concurrency"]["remaining"] == tier["concurrency"]
        assert after["monthly_tokens"]["remaining"] == tier["monthly_tokens"] - used
        # Capacity comes back continuously (GCRA): a token per 96 ms of TPD, per 10 ms of TPM.
        assert tier["tpd"] - used <= after["tpd"]["remaining"] <= tier["tpd"] - used + 100
        assert tier["tpm"] - used <= after["tpm"]["remaining"] <= tier["tpm"]
        assert 0 < after["rpm"]["reset_seconds"] <= 60 / tier["rpm"]
    async with stack.http(key) as http:
        groq = (await http.get("/openai/v1/organization/limits")).json()
    assert groq["data"][0]["rpd"]["remaining"] == tier["rpd"] - 1


async def test_limits_of_a_tier_without_limits_are_null(
    stack: AdminStack, orgs: dict[str, Provisioned]
) -> None:
    async with stack.http(orgs["us-unlimited"].keys[0][1]) as http:
        body = (await http.get("/v1/organization/limits")).json()
    [model] = body["data"]
    for name in ("rpm", "rpd", "tpm", "tpd", "concurrency", "monthly_tokens"):
        assert model[name] == {"limit": None, "remaining": None, "reset_seconds": None}, name
