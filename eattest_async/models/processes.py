"""The asynchronous creation of dossiers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import attrs

from ._base import field, items
from .common import Message, Messages, messages_field

__all__ = ["DossierProcess", "ProcessStatus"]


@attrs.frozen(kw_only=True)
class DossierProcess:
    """The answer to a creation: the process to follow (``client.processes.wait``).

    v1.1 answers ``processId`` alone; v1.3 may already say more (the other fields).
    """

    process_id: str
    status: str | None = None
    creation: dt.datetime | None = field()
    complete: bool | None = field("isComplete")
    success: bool | None = field("isSuccessful")
    errors: tuple[Message, ...] = items()
    params: Mapping[str, str] | None = field()
    messages: Messages = messages_field()


@attrs.frozen(kw_only=True)
class ProcessStatus:
    """Where a creation process stands; ``errors`` carry the E1xx codes of a failure."""

    process_id: str | None = field()
    complete: bool | None = field("isComplete")
    success: bool | None = field("isSuccessful")
    errors: tuple[Message, ...] = items()
    creation: dt.datetime | None = field()
    dossier_id: int | None = field()
    params: Mapping[str, str] | None = field()  # v1.3: what the creation was asked
    messages: Messages = messages_field()

    @property
    def failed(self) -> bool:
        return bool(self.complete) and self.success is False
