"""How deep and how large a decoded JSON value is, measured level by level (no recursion)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shape:
    """The nesting depth (levels of arrays and objects; 0 for a scalar) and the count of values."""

    depth: int
    nodes: int


def shape(value: Any) -> Shape:
    """The shape of ``value``, a tree of dicts, lists and scalars as a JSON decoder makes it."""
    depth = nodes = 0
    level = [value]
    while level:
        nodes += len(level)
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        depth += 1
        level = [child for v in containers for child in (v.values() if isinstance(v, dict) else v)]
    return Shape(depth, nodes)
