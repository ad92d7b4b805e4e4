"""Envelope parts shared by every answer: messages, pages, and results that carry them.

Every method gives the answer's ``messages`` (info, warning, error) with its result:
``page.messages`` for a page, ``items.messages`` for a list (:class:`Items`, a tuple),
``dossier.messages`` for an object (a field that is not part of the object's equality),
and actions (update, stop...) return the :class:`Messages` themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

import attrs

from ._base import field, items

__all__ = ["Items", "Message", "Messages", "Page", "messages_field"]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class Message:
    """An info, warning or error item: ``{code, message}`` (plain strings have no code).

    The errors of a creation process (v1.3 ``ErrorMessage``) also say what was asked
    (``request``) and why it failed (``reason``).
    """

    code: str | None = field()
    message: str | None = field()
    request: str | None = field()
    reason: str | None = field()


@attrs.frozen(kw_only=True)
class Messages:
    """The ``messages`` of an answer: info, warnings and errors, each a tuple of Message."""

    info: tuple[Message, ...] = items()
    warning: tuple[Message, ...] = items()
    error: tuple[Message, ...] = items()

    def __bool__(self) -> bool:
        return bool(self.info or self.warning or self.error)


NO_MESSAGES = Messages()


def messages_field() -> Any:
    """The ``messages`` of the answer that carried an object: set by the resource from the
    envelope, never read from the object's own JSON, and not part of its equality."""
    return attrs.field(
        default=NO_MESSAGES, eq=False, repr=False, kw_only=True, metadata={"envelope": True}
    )


class Items(tuple[T, ...], Generic[T]):
    """The items of a list answer (a tuple), with the answer's ``messages``."""

    messages: Messages

    def __new__(cls, items: Iterable[T] = (), messages: Messages = NO_MESSAGES) -> Items[T]:
        self = super().__new__(cls, items)
        self.messages = messages
        return self


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a list operation. ``page`` is 0-based; ``total_elements`` counts all pages."""

    items: tuple[T, ...]
    page: int
    size: int
    total_elements: int | None
    messages: Messages = attrs.field(default=NO_MESSAGES)

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
