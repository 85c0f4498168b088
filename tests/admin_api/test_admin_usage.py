"""Usage through the admin API (two workers, SQLite and PostgreSQL): an organisation and key
made over the API, chats with the `openai` SDK, their buckets; every organisation at once,
grouped by organisation; the CSV export parsed back; bad input; a deleted organisation."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from gateway.db.engine import session_factory
from gateway.usage.buckets import key_public_id
from tests.support.admin import AdminStack
from tests.support.chat import MODEL, image_message
from tests.support.usage import record_all, usage_at

# 2026-09-07 00:00:00 UTC: the known-time rows are in the 40 days after it.
DAY0 = 1_788_739_200
DAY = 86_400


async def new_org(stack: AdminStack, name: str) -> tuple[int, int, str]:
    """An organisation and a key made over the admin API: (org id, key id, secret)."""
    async with stack.admin() as admin:
        org = await admin.post("/organizations", json={"name": name})
        assert org.status_code == 201, org.text
        key = await admin.post(f"/organizations/{name}/keys", json={"name": "usage"})
        assert key.status_code == 201, key.text
    return org.json()["id"], key.json()["id"], key.json()["secret"]


async def admin_get(stack: AdminStack, path: str, **params: Any) -> dict[str, Any]:
    """A 200 JSON answer of the admin API."""
    async with stack.admin() as admin:
        response = await admin.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_chats_of_a_new_key_appear_in_the_organisations_buckets(stack: AdminStack) -> None:
    _, key_id, secret = await new_org(stack, "au-chat")
    since = int(time.time()) - 60
    prompt = completion = 0
    async with stack.openai(secret) as client:
        for message in ({"role": "user", "content": "Hi"}, image_message()):
            answer = await client.chat.completions.create(
                model=MODEL,
                messages=[message],  # type: ignore[list-item]
                max_tokens=2,
                temperature=0,
            )
            assert answer.usage is not None
            prompt += answer.usage.prompt_tokens
            completion += answer.usage.completion_tokens
    page = await admin_get(
        stack,
        "/organizations/au-chat/usage",
        start_time=since,
        bucket_width="1h",
        group_by=["model", "api_key_id"],
    )
    assert (page["object"], page["has_more"], page["next_page"]) == ("page", False, None)
    [bucket] = page["data"]
    [result] = bucket["results"]
    assert (result["model"], result["api_key_id"]) == (MODEL, key_public_id(key_id))
    assert (result["num_model_requests"], result["images"]) == (2, 1)
    assert (result["input_tokens"], result["output_tokens"]) == (prompt, completion)
    assert "organization" not in result  # not grouped by it


async def test_every_organisation_grouped_and_exported_as_csv(stack: AdminStack) -> None:
    first_org, first_key, _ = await new_org(stack, "au-first")
    second_org, second_key, _ = await new_org(stack, "au-second")
    rows = [usage_at(first_org, first_key, DAY0 + day * DAY + 7, model=MODEL) for day in range(40)]
    rows += [
        usage_at(second_org, second_key, DAY0 + 3 * DAY, model="m2", prompt=30, video_frames=5),
        usage_at(second_org, None, DAY0 + 3 * DAY + 1, model="m2", prompt=1),  # its key deleted
    ]
    await record_all(session_factory(stack.engine), rows)
    window = {"start_time": DAY0, "end_time": DAY0 + 40 * DAY}

    everyone = await admin_get(stack, "/usage", **window, group_by="organization,model", limit=31)
    assert everyone["has_more"] is True and len(everyone["data"]) == 31
    day3 = [
        (r["organization"], r["model"], r["num_model_requests"], r["input_tokens"])
        for r in everyone["data"][3]["results"]
    ]
    # Other tests' organisations have no rows in these days.
    assert day3 == [("au-first", MODEL, 1, 10), ("au-second", "m2", 2, 31)]
    one = await admin_get(stack, "/usage", **window, organization="au-second", limit=31)
    assert [len(b["results"]) for b in one["data"]] == [0, 0, 0, 1] + [0] * 27

    # The CSV holds the whole range (40 days, more than a page), a row per bucket and group.
    async with stack.admin() as admin:
        exported = await admin.get(
            "/organizations/au-first/usage.csv", params={**window, "group_by": "api_key_id"}
        )
        everything = await admin.get("/usage.csv", params={**window, "group_by": "organization"})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    parsed = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(row["start_time"]) for row in parsed] == [DAY0 + day * DAY for day in range(40)]
    assert {row["api_key_id"] for row in parsed} == {key_public_id(first_key)}
    assert {
        (row["num_model_requests"], row["input_tokens"], row["output_tokens"]) for row in parsed
    } == {("1", "10", "5")}
    assert parsed[0]["start_time_iso"] == "2026-09-07T00:00:00Z"
    by_org = list(csv.DictReader(io.StringIO(everything.text)))
    second = [row for row in by_org if row["organization"] == "au-second"]
    assert [(r["num_model_requests"], r["input_tokens"], r["video_frames"]) for r in second] == [
        ("2", "31", "5")
    ]
    assert len(by_org) == 41


async def test_the_usage_of_a_deleted_organisation_stays_readable(stack: AdminStack) -> None:
    org_id, key_id, _ = await new_org(stack, "au-gone")
    before = DAY0 - 30 * DAY  # outside the other tests' days
    await record_all(session_factory(stack.engine), [usage_at(org_id, key_id, before + 60)])
    async with stack.admin() as admin:
        deleted = await admin.delete("/organizations/au-gone", params={"force": "true"})
    assert deleted.status_code == 200, deleted.text
    page = await admin_get(
        stack, "/organizations/au-gone/usage", start_time=before, end_time=before + DAY
    )
    assert page["data"][0]["results"][0]["num_model_requests"] == 1


async def test_read_only_tokens_read_usage_and_api_keys_cannot(stack: AdminStack) -> None:
    _, _, secret = await new_org(stack, "au-access")
    window = {"start_time": DAY0, "end_time": DAY0 + DAY}
    async with stack.admin(stack.read_only_token) as admin:
        assert (await admin.get("/usage", params=window)).status_code == 200
        assert (await admin.get("/usage.csv", params=window)).status_code == 200
    async with stack.admin(secret) as admin:
        refused = await admin.get("/organizations/au-access/usage", params=window)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_admin_token"


@pytest.mark.parametrize(
    ("path", "params", "status", "param"),
    [
        ("/organizations/au-nobody/usage", {"start_time": DAY0}, 404, "organization"),
        ("/organizations/au-nobody/usage.csv", {"start_time": DAY0}, 404, "organization"),
        ("/usage", {"organization": "au-nobody", "start_time": DAY0}, 404, "organization"),
        ("/usage", {}, 400, "start_time"),
        ("/usage.csv", {"start_time": "noon"}, 400, "start_time"),
        ("/usage", {"start_time": DAY0, "end_time": DAY0 - 1}, 400, "end_time"),
        ("/usage", {"start_time": 0, "end_time": DAY0}, 400, "end_time"),  # range too large
        ("/usage", {"start_time": DAY0, "bucket_width": "1s"}, 400, "bucket_width"),
        ("/usage", {"start_time": DAY0, "group_by": "tier"}, 400, "group_by"),
        ("/usage", {"start_time": DAY0, "limit": 99}, 400, "limit"),
        ("/usage", {"start_time": DAY0, "page": "page_x"}, 400, "page"),
    ],
)
async def test_bad_usage_queries(
    stack: AdminStack, path: str, params: dict[str, Any], status: int, param: str
) -> None:
    async with stack.admin() as admin:
        response = await admin.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


async def test_the_usage_routes_and_their_parameters_are_in_the_schema(stack: AdminStack) -> None:
    async with stack.http(None) as http:
        schema = (await http.get("/admin/openapi.json")).json()
    for path in ("/organizations/{name}/usage", "/organizations/{name}/usage.csv", "/usage"):
        operation = schema["paths"]["/admin/v1" + path]["get"]
        names = {parameter["name"]: parameter for parameter in operation["parameters"]}
        assert {"start_time", "bucket_width", "group_by", "limit", "page"} <= set(names), path
        assert names["start_time"]["required"] is True
    page = schema["paths"]["/admin/v1/usage"]["get"]["responses"]["200"]["content"]
    assert page["application/json"]["schema"]["$ref"].endswith("/UsagePage")
