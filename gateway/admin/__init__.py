"""The admin CLI (orgs, keys, tiers, usage, db) and first-start bootstrap."""

from gateway.admin.bootstrap import development_secret_warning, ensure_default_organisation

__all__ = ["development_secret_warning", "ensure_default_organisation"]
