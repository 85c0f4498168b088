"""API keys: format, hashing, lookup with a bounded-staleness cache."""

from gateway.auth.authenticator import Authenticator
from gateway.auth.keys import NewKey, generate_key, hash_key
from gateway.auth.principal import InvalidApiKey, Principal

__all__ = ["Authenticator", "InvalidApiKey", "NewKey", "Principal", "generate_key", "hash_key"]
