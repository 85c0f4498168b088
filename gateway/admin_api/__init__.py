"""The admin HTTP API at ``/admin/v1``: organisations, keys, tiers and usage, for admin tokens."""

from gateway.admin_api.router import admin_openapi, admin_router

__all__ = ["admin_openapi", "admin_router"]
