"""Envelope parts shared by every answer: messages and pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

import attrs

from ._base import field, items

__all__ = ["Message", "Messages", "Page"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class Message:
    """An info, warning or error item: ``{code, message}`` (plain strings have no code)."""

    code: str | None = field()
    message: str | None = field()


@attrs.frozen(kw_only=True)
class Messages:
    """The ``messages`` of an answer: info, warnings and errors, each a tuple of Message."""

    info: tuple[Message, ...] = items()
    warning: tuple[Message, ...] = items()
    error: tuple[Message, ...] = items()


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a list operation. ``page`` is 0-based; ``total_elements`` counts all pages."""

    items: tuple[T, ...]
    page: int
    size: int
    total_elements: int | None
    messages: Messages = attrs.field(factory=Messages)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def page_count(self) -> int | None:
        """Pages in all, from ``total_elements`` (None when the server did not say)."""
        if self.total_elements is None or self.size <= 0:
            return None
        return -(-self.total_elements // self.size)
