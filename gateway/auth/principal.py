"""Who a request is from, once its key is accepted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """An accepted key and the organisation it belongs to."""

    key_id: int
    org_id: int
    org_name: str
    tier: str
    expires_at: datetime | None


class InvalidApiKey(Exception):
    """Missing, malformed, unknown, revoked or expired: all get this same 401."""

    status_code = 401
    code = "invalid_api_key"
    type = "invalid_request_error"
    message = "Invalid API Key"

    def __init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI-shaped error body."""
        return {
            "error": {"message": self.message, "type": self.type, "param": None, "code": self.code}
        }


class AdminTokenRefused(InvalidApiKey):
    """An admin token sent where an API key belongs: the same 401, saying so."""

    message = "Admin tokens are not valid here; this route needs an API key (vg_...)."
