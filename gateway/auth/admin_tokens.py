"""Admin token format: ``vgadm_`` + base62 of 32 random bytes, stored as HMAC-SHA-256.

The prefix differs from API keys' ``vg_``, so neither can pass for the other.
"""

from __future__ import annotations

import secrets

from gateway.auth.keys import (
    KEY_BODY_LENGTH,
    KEY_RANDOM_BYTES,
    NewKey,
    base62,
    hash_key,
)

ADMIN_TOKEN_PREFIX = "vgadm_"
ADMIN_DISPLAY_PREFIX_LENGTH = len(ADMIN_TOKEN_PREFIX) + 8


def generate_admin_token(server_secret: str) -> NewKey:
    """A new random admin token, its display prefix and its hash."""
    secret = ADMIN_TOKEN_PREFIX + base62(secrets.token_bytes(KEY_RANDOM_BYTES), KEY_BODY_LENGTH)
    return NewKey(secret, secret[:ADMIN_DISPLAY_PREFIX_LENGTH], hash_key(secret, server_secret))


def looks_like_admin_token(secret: str) -> bool:
    """Whether a string has the admin token format."""
    body = secret[len(ADMIN_TOKEN_PREFIX) :]
    return (
        secret.startswith(ADMIN_TOKEN_PREFIX)
        and len(body) == KEY_BODY_LENGTH
        and body.isascii()
        and body.isalnum()
    )
