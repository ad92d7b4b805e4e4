"""Incremental sync: the dossiers changed since the last run, each once, then a watermark.

The API filters by ``stateLastChangeDate`` with a day's precision; the items carry the
change's datetime (naive, on the service's clock). A run asks from ``margin`` before the
watermark (nodes' clocks differ, several changes share a second), keeps what changed at
or after ``watermark - margin``, and skips what the last run delivered with the same
stamp (the watermark's ``edge``). The next watermark is the latest stamp seen, on the
service's clock: the client's clock is never compared with the server's. It is given
only when the scan was complete, so an interrupted or dubious run is simply run again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

import attrs

from ._converter import structure_many
from ._exceptions import InvalidInputError
from ._pagination import Scan, ScanReport
from ._protocol import parse_datetime
from .models.scans import Watermark

__all__ = ["DEFAULT_MARGIN", "ChangeTracker", "ChangeWindow", "Changes"]

T = TypeVar("T")

DEFAULT_MARGIN = dt.timedelta(minutes=10)
_STAMP = "stateLastChangeDate"
_ID = "dossierId"


def _stamp(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = parse_datetime(value)
    except ValueError:
        return None
    return stamp.replace(tzinfo=None) if stamp.tzinfo is not None else stamp


@attrs.frozen(kw_only=True)
class ChangeWindow:
    """From where a run asks, and what the last run already delivered."""

    since: dt.datetime | None
    margin: dt.timedelta
    edge: frozenset[tuple[int, str]]
    filters: tuple[tuple[str, str], ...]

    @classmethod
    def of(
        cls,
        since: Watermark | Mapping[str, Any] | dt.datetime | dt.date | None,
        *,
        margin: dt.timedelta,
        filters: tuple[tuple[str, str], ...],
    ) -> ChangeWindow:
        if not isinstance(margin, dt.timedelta) or margin < dt.timedelta(0):
            raise InvalidInputError("margin", "expected a non-negative timedelta")
        if isinstance(since, Mapping):
            since = Watermark.from_json(since)
        edge: frozenset[tuple[int, str]] = frozenset()
        if isinstance(since, Watermark):
            if since.filters != filters:
                raise InvalidInputError("since", "this watermark was made with other filters")
            edge = frozenset(since.edge)
            since = since.changed_at
        if isinstance(since, dt.datetime):
            if since.tzinfo is not None:
                raise InvalidInputError(
                    "since", "a naive datetime on the service's clock, as its stamps are"
                )
        elif isinstance(since, dt.date):
            since = dt.datetime.combine(since, dt.time())
        elif since is not None:
            raise InvalidInputError("since", "expected a Watermark, a datetime, a date or None")
        return cls(since=since, margin=margin, edge=edge, filters=filters)

    def query_filters(self) -> dict[str, Any]:
        """The ``stateLastChangeDate`` filter (a date: the API's precision)."""
        if self.since is None:
            return {}
        return {"state_last_change_date": (self.since - self.margin).date()}


class ChangeTracker:
    """Pure: which items a run delivers, and the watermark it leaves."""

    def __init__(self, window: ChangeWindow) -> None:
        self.window = window
        self._from = None if window.since is None else window.since - window.margin
        self.latest: dt.datetime | None = window.since
        self._recent: dict[int, tuple[dt.datetime, str]] = {}  # within margin of latest
        self.skipped_older = 0
        self.skipped_seen = 0

    def admit(self, item: Mapping[str, Any]) -> bool:
        """Deliver ``item``? (changed within the window, not delivered last time)."""
        stamp = _stamp(item.get(_STAMP))
        item_id = item.get(_ID)
        if stamp is None:
            return True  # cannot be placed: the server says it changed, so it goes
        text = stamp.isoformat()
        if self._from is not None and stamp < self._from:
            self.skipped_older += 1
            return False
        if isinstance(item_id, int):
            self._remember(item_id, stamp, text)
            if (item_id, text) in self.window.edge:
                self.skipped_seen += 1
                return False
        return True

    def _remember(self, item_id: int, stamp: dt.datetime, text: str) -> None:
        if self.latest is None or stamp > self.latest:
            self.latest = stamp
            if len(self._recent) > 1024:
                floor = stamp - self.window.margin
                self._recent = {k: v for k, v in self._recent.items() if v[0] >= floor}
        if stamp >= self.latest - self.window.margin:
            self._recent[item_id] = (stamp, text)

    def watermark(self) -> Watermark | None:
        if self.latest is None:
            return None
        floor = self.latest - self.window.margin
        edge = sorted((k, v[1]) for k, v in self._recent.items() if v[0] >= floor)
        if self.window.since is not None and self.latest == self.window.since:
            # Nothing newer than last time: what was at the edge then still is.
            edge = sorted(set(edge) | set(self.window.edge))
        return Watermark(changed_at=self.latest, edge=tuple(edge), filters=self.window.filters)


class Changes(Generic[T], AsyncIterator[T]):
    """The changed dossiers (each once), then ``next_watermark`` if the run was complete."""

    def __init__(
        self, scan: Scan[dict[str, Any]], window: ChangeWindow, *, model: type[T] | None
    ) -> None:
        self.scan = scan
        self._tracker = ChangeTracker(window)
        self._model = model
        self._generator: AsyncGenerator[T, None] | None = None
        self.delivered = 0

    def __aiter__(self) -> AsyncIterator[T]:
        if self._generator is None:
            self._generator = self._items()
        return self._generator

    async def __anext__(self) -> T:
        item: T = await self.__aiter__().__anext__()
        return item

    async def _items(self) -> AsyncGenerator[T, None]:
        admit = self._tracker.admit
        async with contextlib.aclosing(self.scan.batches()) as batches:  # type: ignore[type-var]
            async for batch in batches:
                changed = [item for item in batch if admit(item)]
                if not changed:
                    continue
                items: Any = changed
                if self._model is not None:
                    items = structure_many(changed, self._model, method="GET", path="/dossiers")
                for item in items:
                    self.delivered += 1
                    yield item

    @property
    def report(self) -> ScanReport:
        return self.scan.report

    @property
    def next_watermark(self) -> Watermark | None:
        """Where the next run starts; None unless this run went through, complete."""
        if not self.scan.report.complete:
            return None
        return self._tracker.watermark()

    async def aclose(self) -> None:
        """Stop now: cancel in-flight requests, release every connection."""
        if self._generator is not None:
            await self._generator.aclose()
        await self.scan.aclose()

    async def __aenter__(self) -> Changes[T]:
        await self.scan.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
