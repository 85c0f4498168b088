"""The whole lifecycle through the admin API on a two-worker gateway: organisation, key,
chat with the `openai` SDK, a tier change both workers enforce, rotation, revocation."""

from __future__ import annotations

import time

import openai

from tests.support.admin import AdminStack, fresh_chat, settles
from tests.support.chat import MODEL

# A change has reached both workers when this many requests in a row, each on a fresh
# connection (the kernel spreads them over the two workers), see it.
STREAK = 8


async def test_org_key_chat_tier_change_and_revocation(stack: AdminStack) -> None:
    async with stack.admin() as admin:
        roomy = await admin.post("/tiers/adm-roomy/limits", json={"rpd": 100, "tpm": 50_000})
        assert roomy.status_code == 200, roomy.text
        one_rpm = await admin.post("/tiers/adm-one-rpm/limits", json={"model": "*", "rpm": 1})
        assert one_rpm.json()["limits"] == [
            {
                "model": "*",
                "rpm": 1,
                "rpd": None,
                "tpm": None,
                "tpd": None,
                "concurrency": None,
                "monthly_tokens": None,
            }
        ]
        org = await admin.post("/organizations", json={"name": "adm-life", "tier": "adm-roomy"})
        assert org.status_code == 201, org.text
        assert org.json() | {"id": 0, "created_at": 0} == {
            "object": "organization",
            "id": 0,
            "name": "adm-life",
            "tier": "adm-roomy",
            "active_keys": 0,
            "created_at": 0,
        }
        created = await admin.post("/organizations/adm-life/keys", json={"name": "ci"})
        assert created.status_code == 201, created.text
        key = created.json()
        assert key["secret"].startswith("vg_") and key["secret"].startswith(key["prefix"])
        assert (key["organization"], key["name"], key["state"]) == ("adm-life", "ci", "active")

        # The SDK with the new key; the new tier's limits are in its headers as soon as the
        # worker's tier catalog has caught up with the change (one poll interval).
        deadline = time.monotonic() + 2.0
        async with stack.openai(key["secret"]) as client:
            while True:
                raw = await client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1
                )
                assert raw.parse().choices[0].message.content is not None
                if raw.headers.get("x-ratelimit-limit-requests") == "100":
                    break
                assert time.monotonic() < deadline, "the new tier's limits never applied"
        listed = (await admin.get("/organizations/adm-life/keys")).json()
        assert [row["id"] for row in listed["data"]] == [key["id"]]
        assert "secret" not in listed["data"][0]

        # The tier change reaches both workers: the one request a minute, then 429 everywhere.
        moved = await admin.patch("/organizations/adm-life", json={"tier": "adm-one-rpm"})
        assert moved.json()["tier"] == "adm-one-rpm"
        await settles(lambda: fresh_chat(stack, key["secret"]), 429, STREAK, 1.0)
        refused = (await fresh_chat(stack, key["secret"])).json()["error"]
        assert (refused["type"], refused["code"]) == ("requests", "rate_limit_exceeded")

        # Revocation: 401 from both workers within a second.
        revoked = await admin.post(f"/keys/{key['id']}/revoke")
        assert revoked.json()["state"] == "revoked"
        await settles(lambda: fresh_chat(stack, key["secret"]), 401, STREAK, 1.0)
        body = (await fresh_chat(stack, key["secret"])).json()
        assert body["error"]["code"] == "invalid_api_key"

        # Deleting it now needs no force: its only key is revoked.
        deleted = await admin.delete("/organizations/adm-life")
        assert deleted.json() == {
            "object": "organization.deleted",
            "id": org.json()["id"],
            "name": "adm-life",
            "revoked_keys": 0,
            "deleted": True,
        }
        assert (await admin.get("/organizations/adm-life")).status_code == 404


async def test_rotation_with_grace_and_expiry(stack: AdminStack) -> None:
    async with stack.admin() as admin:
        await admin.post("/organizations", json={"name": "adm-rotate", "tier": "enterprise"})
        old = (await admin.post("/organizations/adm-rotate/keys", json={"name": "web"})).json()
        rotation = await admin.post(f"/keys/{old['id']}/rotate", json={"grace_period": 3600})
        assert rotation.status_code == 200, rotation.text
        new, previous = rotation.json()["key"], rotation.json()["previous"]
        assert new["name"] == "web" and new["secret"] != old["secret"]
        assert previous["state"] == "active"
        assert abs(previous["expires_at"] - (time.time() + 3600)) < 60
        for secret in (old["secret"], new["secret"]):
            assert (await fresh_chat(stack, secret)).status_code == 200

        # Without grace the old key goes at once.
        again = (await admin.post(f"/keys/{new['id']}/rotate")).json()
        assert again["previous"]["state"] == "revoked"
        await settles(lambda: fresh_chat(stack, new["secret"]), 401, STREAK, 1.0)
        assert (await fresh_chat(stack, again["key"]["secret"])).status_code == 200

        short = (await admin.post("/organizations/adm-rotate/keys", json={"expires_in": 1})).json()
        assert short["expires_at"] - short["created_at"] == 1
        await settles(lambda: fresh_chat(stack, short["secret"]), 401, STREAK, 3.0)
        assert (await admin.get(f"/keys/{short['id']}")).json()["state"] == "expired"

        forced = await admin.delete("/organizations/adm-rotate", params={"force": "true"})
        assert forced.json()["revoked_keys"] == 3  # old (in grace), the newest, the expired
        await settles(lambda: fresh_chat(stack, again["key"]["secret"]), 401, STREAK, 1.0)


async def test_lists_are_paginated(stack: AdminStack) -> None:
    async with stack.admin() as admin:
        names = [f"adm-page-{i}" for i in range(5)]
        for name in names:
            assert (await admin.post("/organizations", json={"name": name})).status_code == 201
        seen: list[dict[str, object]] = []
        after: int | None = None
        while True:
            params = {"limit": 2} | ({"after": after} if after is not None else {})
            page = (await admin.get("/organizations", params=params)).json()
            assert page["object"] == "list" and len(page["data"]) <= 2
            assert page["first_id"] == page["data"][0]["id"]
            assert page["last_id"] == page["data"][-1]["id"]
            seen += page["data"]
            if not page["has_more"]:
                break
            after = page["last_id"]
        ids = [org["id"] for org in seen]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert [org["name"] for org in seen if org["name"] in names] == names

        tiers = (await admin.get("/tiers", params={"limit": 1})).json()
        assert tiers["has_more"] and len(tiers["data"]) == 1
        rest = (await admin.get("/tiers", params={"after": tiers["last_id"]})).json()
        assert tiers["last_id"] not in [tier["id"] for tier in rest["data"]]
        assert [t["id"] for t in rest["data"]] == sorted(t["id"] for t in rest["data"])


async def test_admin_routes_and_api_keys_do_not_mix(stack: AdminStack) -> None:
    async with stack.admin() as admin:
        await admin.post("/organizations", json={"name": "adm-mix", "tier": "enterprise"})
        key = (await admin.post("/organizations/adm-mix/keys", json={})).json()["secret"]
    async with stack.admin(key) as with_api_key:
        refused = await with_api_key.get("/organizations")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_admin_token"
    assert "API keys are not valid on admin routes" in refused.json()["error"]["message"]

    async with stack.openai(stack.token) as client:
        try:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1
            )
        except openai.AuthenticationError as exc:
            error = exc.body
        else:
            raise AssertionError("an admin token was accepted on /v1")
    assert isinstance(error, dict) and error["code"] == "invalid_api_key"
    assert "Admin tokens are not valid here" in error["message"]
    async with stack.http(stack.token) as http:
        assert (await http.get("/v1/models")).status_code == 401


async def test_the_cli_and_the_api_see_the_same_organisations(stack: AdminStack) -> None:
    stack.cli("orgs", "create", "adm-cli", "--tier", "free")
    stack.cli("keys", "create", "--org", "adm-cli")
    async with stack.admin() as admin:
        org = (await admin.get("/organizations/adm-cli")).json()
        assert (org["tier"], org["active_keys"]) == ("free", 1)
        await admin.patch("/organizations/adm-cli", json={"tier": "developer"})
        refused = await admin.delete("/organizations/adm-cli")
        assert refused.json()["error"]["code"] == "organization_has_active_keys"
    [row] = [row for row in stack.cli_json("orgs", "list") if row["name"] == "adm-cli"]
    assert row["tier"] == "developer"
    stack.cli("orgs", "delete", "adm-cli", "--force")
    async with stack.admin() as admin:
        assert (await admin.get("/organizations/adm-cli")).status_code == 404
