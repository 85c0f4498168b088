"""A bounded in-process cache of key lookups, dropped whole when the config revision moves."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gateway.auth.principal import Principal


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A cached answer: the principal, or None for a known-bad key (negative caching)."""

    principal: Principal | None


class KeyCache:
    """LRU of key tag -> principal (or None), each entry with its own deadline.

    A tag is a keyed hash of the presented secret (``Authenticator``), never the secret.

    ``generation`` guards against a lookup that started before a revocation landing in the
    cache after the cache was cleared for it.
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[bytes, tuple[Principal | None, float]] = OrderedDict()
        self._max_entries = max_entries
        self.generation = 0

    def get(self, tag: bytes, now: float) -> CacheHit | None:
        """The cached answer, or None when absent or past its deadline."""
        entry = self._entries.get(tag)
        if entry is None:
            return None
        principal, deadline = entry
        if now >= deadline:
            del self._entries[tag]
            return None
        self._entries.move_to_end(tag)
        return CacheHit(principal)

    def put(
        self, tag: bytes, principal: Principal | None, deadline: float, generation: int
    ) -> None:
        """Remember an answer read while the cache was at ``generation``."""
        if generation != self.generation:
            return
        self._entries[tag] = (principal, deadline)
        self._entries.move_to_end(tag)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything, and refuse answers from lookups already under way."""
        self._entries.clear()
        self.generation += 1
