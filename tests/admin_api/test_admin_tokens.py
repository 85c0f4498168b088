"""Admin tokens on the admin API: missing, unknown, revoked, read-only; the schema."""

from __future__ import annotations

import httpx

from tests.support.admin import AdminStack, created_token


def error_of(response: httpx.Response) -> dict[str, object]:
    """The OpenAI-shaped error object of a response."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, object] = body["error"]
    return error


async def test_missing_unknown_and_revoked_tokens_are_401(stack: AdminStack) -> None:
    async with httpx.AsyncClient(base_url=stack.main.url + "/admin/v1", timeout=30) as http:
        missing = await http.get("/tiers")
        unknown = await http.get("/tiers", headers={"authorization": "Bearer vgadm_" + "0" * 43})
        basic = await http.get("/tiers", headers={"authorization": "Basic dXNlcjpwYXNz"})
    for response in (missing, unknown, basic):
        assert response.status_code == 401
        assert error_of(response)["code"] == "invalid_admin_token"

    token = created_token(stack, "short-lived")
    async with stack.admin(token["secret"]) as admin:
        assert (await admin.get("/tiers")).status_code == 200
        revoked = stack.cli_json("admin-tokens", "revoke", token["prefix"])
        assert revoked["state"] == "revoked"
        assert (await admin.get("/tiers")).status_code == 401  # looked up on every request
    [listed] = [row for row in stack.cli_json("admin-tokens", "list") if row["id"] == token["id"]]
    assert listed["last_used_at"] is not None and listed["state"] == "revoked"


async def test_a_read_only_token_reads_but_never_writes(stack: AdminStack) -> None:
    async with stack.admin() as admin:
        await admin.post("/organizations", json={"name": "adm-ro", "tier": "free"})
        key = (await admin.post("/organizations/adm-ro/keys", json={})).json()
    writes = [
        ("POST", "/organizations", {"name": "adm-ro-new"}),
        ("PATCH", "/organizations/adm-ro", {"tier": "developer"}),
        ("DELETE", "/organizations/adm-ro?force=true", None),
        ("POST", "/organizations/adm-ro/keys", {}),
        ("POST", f"/keys/{key['id']}/revoke", None),
        ("POST", f"/keys/{key['id']}/rotate", {}),
        ("POST", "/tiers/free/limits", {"rpm": 1}),
    ]
    async with stack.admin(stack.read_only_token) as reader:
        for path in ("/organizations", "/organizations/adm-ro", "/tiers", f"/keys/{key['id']}"):
            assert (await reader.get(path)).status_code == 200, path
        for method, path, body in writes:
            response = await reader.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            error = error_of(response)
            assert (error["type"], error["code"]) == (
                "permission_error",
                "insufficient_permissions",
            )
        org = (await reader.get("/organizations/adm-ro")).json()
        assert (org["tier"], org["active_keys"]) == ("free", 1)
        assert (await reader.get("/organizations/adm-ro-new")).status_code == 404
        assert (await reader.get("/tiers/free")).json()["limits"][0]["rpm"] == 30


async def test_the_admin_openapi_schema_has_the_admin_routes_only(stack: AdminStack) -> None:
    async with httpx.AsyncClient(base_url=stack.main.url, timeout=30) as http:
        response = await http.get("/admin/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = set(schema["paths"])
    assert {
        "/admin/v1/organizations",
        "/admin/v1/organizations/{name}",
        "/admin/v1/organizations/{name}/keys",
        "/admin/v1/keys/{key_id}/rotate",
        "/admin/v1/tiers/{name}/limits",
    } <= paths
    assert all(path.startswith("/admin/v1/") for path in paths), paths
    assert schema["components"]["securitySchemes"]["AdminToken"]["scheme"] == "bearer"
    # Errors are documented in the shape they are sent.
    set_limits = schema["paths"]["/admin/v1/tiers/{name}/limits"]["post"]["responses"]
    for status in ("400", "401", "403", "404"):
        body = set_limits[status]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ErrorBody"}, status
    detail = schema["components"]["schemas"]["ErrorDetail"]["properties"]
    assert set(detail) == {"message", "type", "param", "code"}
    limits = schema["components"]["schemas"]["SetLimits"]["properties"]["rpm"]
    assert "integer" in str(limits) and limits.get("minimum") == 1
