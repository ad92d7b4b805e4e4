"""Helpers shared by the model modules: field declarations that carry their wire names."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["field", "items"]


def field(*aliases: str, key: str | None = None) -> Any:
    """An optional field (default None). ``key`` is its wire name when not plain camelCase;
    ``aliases`` are other names the service uses for it (v1.3, real captures)."""
    metadata: dict[str, Any] = {}
    if key is not None:
        metadata["key"] = key
    if aliases:
        metadata["aliases"] = aliases
    return attrs.field(default=None, metadata=metadata)


def items(*aliases: str, key: str | None = None) -> Any:
    """A tuple field, empty when missing or null."""
    metadata: dict[str, Any] = {"empty_on_null": True}
    if key is not None:
        metadata["key"] = key
    if aliases:
        metadata["aliases"] = aliases
    return attrs.field(factory=tuple, metadata=metadata)
