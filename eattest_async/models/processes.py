"""The asynchronous creation of dossiers."""

from __future__ import annotations

import datetime as dt

import attrs

from ._base import field, items
from .common import Message

__all__ = ["DossierProcess", "ProcessStatus"]


@attrs.frozen(kw_only=True)
class DossierProcess:
    """The answer to a creation: the process to follow (``client.processes.wait``)."""

    process_id: str
    status: str | None = None


@attrs.frozen(kw_only=True)
class ProcessStatus:
    """Where a creation process stands; ``errors`` carry the E1xx codes of a failure."""

    process_id: str | None = field()
    complete: bool | None = field("isComplete")
    success: bool | None = field("isSuccessful")
    errors: tuple[Message, ...] = items()
    creation: dt.datetime | None = field()
    dossier_id: int | None = field()

    @property
    def failed(self) -> bool:
        return bool(self.complete) and self.success is False
