"""Every bad input to the admin API is an OpenAI-shaped 4xx naming its parameter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.admin import AdminStack

# (method, path, JSON body or raw bytes, status, param, code)
CASES: list[tuple[str, str, Any, int, str | None, str]] = [
    ("GET", "/organizations/adm-nobody", None, 404, "organization", "organization_not_found"),
    (
        "PATCH",
        "/organizations/adm-nobody",
        {"tier": "free"},
        404,
        "organization",
        "organization_not_found",
    ),
    ("POST", "/organizations/adm-nobody/keys", {}, 404, "organization", "organization_not_found"),
    ("GET", "/organizations/adm-nobody/keys", None, 404, "organization", "organization_not_found"),
    ("POST", "/organizations", {"name": "adm-bad", "tier": "gold"}, 404, "tier", "tier_not_found"),
    ("PATCH", "/organizations/adm-dup", {"tier": "gold"}, 404, "tier", "tier_not_found"),
    ("POST", "/organizations", {"name": "adm-dup"}, 409, "name", "organization_exists"),
    ("POST", "/organizations", {"name": "no spaces"}, 400, "name", "invalid_name"),
    ("POST", "/organizations", {"name": ""}, 400, "name", "invalid_name"),
    ("POST", "/organizations", {"name": 7}, 400, "name", "invalid_value"),
    ("POST", "/organizations", {"tier": "free"}, 400, "name", "invalid_value"),
    (
        "POST",
        "/organizations",
        {"name": "adm-x", "color": "red"},
        400,
        "color",
        "unknown_parameter",
    ),
    ("POST", "/organizations", b'{"name": "adm-x",', 400, None, "invalid_json"),
    ("POST", "/organizations", b"[1, 2]", 400, None, "invalid_json"),
    ("POST", "/organizations", b"", 400, None, "invalid_json"),
    ("POST", "/tiers/adm-t/limits", {"rpm": "ten"}, 400, "rpm", "invalid_value"),
    ("POST", "/tiers/adm-t/limits", {"rpm": "10"}, 400, "rpm", "invalid_value"),
    ("POST", "/tiers/adm-t/limits", {"tpm": -5}, 400, "tpm", "invalid_value"),
    ("POST", "/tiers/adm-t/limits", {"rpd": 0}, 400, "rpd", "invalid_value"),
    ("POST", "/tiers/adm-t/limits", {"tpd": 2.5}, 400, "tpd", "invalid_value"),
    ("POST", "/tiers/adm-t/limits", {"concurrency": True}, 400, "concurrency", "invalid_value"),
    (
        "POST",
        "/tiers/adm-t/limits",
        {"monthly_tokens": "1e6"},
        400,
        "monthly_tokens",
        "invalid_value",
    ),
    ("POST", "/tiers/adm-t/limits", {"rqm": 5}, 400, "rqm", "unknown_parameter"),
    ("POST", "/tiers/bad tier/limits", {"rpm": 5}, 400, "name", "invalid_name"),
    ("GET", "/tiers/gold", None, 404, "tier", "tier_not_found"),
    ("GET", "/organizations?limit=0", None, 400, "limit", "invalid_value"),
    ("GET", "/organizations?limit=101", None, 400, "limit", "invalid_value"),
    ("GET", "/organizations?limit=ten", None, 400, "limit", "invalid_value"),
    ("GET", "/organizations?after=first", None, 400, "after", "invalid_value"),
    ("GET", "/organizations/adm-dup/keys?limit=-1", None, 400, "limit", "invalid_value"),
    ("GET", "/tiers?limit=1000", None, 400, "limit", "invalid_value"),
    ("DELETE", "/organizations/adm-dup?force=maybe", None, 400, "force", "invalid_value"),
    ("DELETE", "/organizations/adm-dup", None, 409, "force", "organization_has_active_keys"),
    ("POST", "/organizations/adm-dup/keys", {"expires_in": 0}, 400, "expires_in", "invalid_value"),
    (
        "POST",
        "/organizations/adm-dup/keys",
        {"expires_in": "1d"},
        400,
        "expires_in",
        "invalid_value",
    ),
    ("GET", "/keys/999999", None, 404, "key_id", "key_not_found"),
    ("POST", "/keys/999999/revoke", None, 404, "key_id", "key_not_found"),
    ("POST", "/keys/999999/rotate", {}, 404, "key_id", "key_not_found"),
    ("GET", "/nothing-here", None, 404, None, "unknown_url"),
    ("PUT", "/organizations", None, 405, None, "method_not_allowed"),
]


@pytest.fixture(scope="module")
async def duplicate(stack: AdminStack) -> None:
    """An organisation ``adm-dup`` with an active key, for the cases that need one."""
    async with stack.admin() as admin:
        assert (await admin.post("/organizations", json={"name": "adm-dup"})).status_code == 201
        assert (await admin.post("/organizations/adm-dup/keys", json={})).status_code == 201


@pytest.mark.parametrize(("method", "path", "body", "status", "param", "code"), CASES)
@pytest.mark.usefixtures("duplicate")
async def test_bad_input(
    stack: AdminStack,
    method: str,
    path: str,
    body: Any,
    status: int,
    param: str | None,
    code: str,
) -> None:
    content = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body
    headers = {"content-type": "application/json"} if content is not None else {}
    async with stack.admin() as admin:
        response = await admin.request(
            method, path, json=json_body, content=content, headers=headers
        )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error
    assert error["message"]


async def test_bad_rotation_inputs(stack: AdminStack) -> None:
    async with stack.admin() as admin:
        await admin.post("/organizations", json={"name": "adm-badrot"})
        key = (await admin.post("/organizations/adm-badrot/keys", json={})).json()
        negative = await admin.post(f"/keys/{key['id']}/rotate", json={"grace_period": -1})
        assert (negative.status_code, negative.json()["error"]["param"]) == (400, "grace_period")
        await admin.post(f"/keys/{key['id']}/revoke")
        revoked = await admin.post(f"/keys/{key['id']}/rotate", json={})
        assert (revoked.status_code, revoked.json()["error"]["code"]) == (409, "key_revoked")
        await admin.delete("/organizations/adm-badrot")
        reused = await admin.post("/organizations", json={"name": "adm-badrot"})
        assert reused.status_code == 409
        assert "deleted" in reused.json()["error"]["message"]
