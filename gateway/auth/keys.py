"""API key format and hashing: ``vg_`` + base62 of 32 random bytes, stored as HMAC-SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "vg_"
KEY_RANDOM_BYTES = 32
# ceil(256 bits / log2(62)) = 43 base62 digits, so every key has the same length.
KEY_BODY_LENGTH = 43
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 8
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: the secret is shown once, only the hash is stored."""

    secret: str
    prefix: str
    secret_hash: str


def base62(data: bytes, width: int) -> str:
    """``data`` as a big-endian base62 number, zero-padded to ``width`` digits."""
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def hash_key(secret: str, server_secret: str) -> str:
    """HMAC-SHA-256 of the key under the server secret, hex: what the database stores."""
    return hmac.digest(server_secret.encode(), secret.encode(), hashlib.sha256).hex()


def generate_key(server_secret: str) -> NewKey:
    """A new random key, its display prefix and its hash."""
    secret = KEY_PREFIX + base62(secrets.token_bytes(KEY_RANDOM_BYTES), KEY_BODY_LENGTH)
    return NewKey(secret, secret[:DISPLAY_PREFIX_LENGTH], hash_key(secret, server_secret))


def looks_like_key(secret: str) -> bool:
    """Whether a string has the key format; anything else is rejected without a lookup."""
    body = secret[len(KEY_PREFIX) :]
    return (
        secret.startswith(KEY_PREFIX)
        and len(body) == KEY_BODY_LENGTH
        and body.isascii()
        and body.isalnum()  # for ASCII, exactly the BASE62 alphabet
    )


def hashes_match(stored: str, computed: str) -> bool:
    """Constant-time comparison of two key hashes."""
    return hmac.compare_digest(stored.encode(), computed.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token from an ``Authorization: Bearer …`` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
