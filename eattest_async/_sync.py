"""Incremental sync: the dossiers changed since the last run, each once, then a watermark.

The API filters by ``stateLastChangeDate`` with a day's precision; the items carry the
change's datetime (naive, on the service's clock). A run asks from ``margin`` before the
watermark (nodes' clocks differ, several changes share a second), keeps what changed at
or after ``watermark - margin``, and skips what the last run delivered with the same
stamp (the watermark's ``edge``). The next watermark is the latest stamp seen, on the
service's clock, but never later than the run's start plus ``margin`` on the client's
clock (its local time, as the service's stamps are local): one stamp from a broken node
(``9999-12-31``) would otherwise hide every later change for good. Such a stamp is
delivered, said in ``report.warnings``, and not trusted; a saved watermark beyond that
bound is not trusted either (the run reads everything). A client whose local time is
behind the service's should give a ``margin`` that covers the difference. The watermark
is given only when the scan was complete, so an interrupted or dubious run is run again.

The edge is bounded (``MAX_EDGE`` pairs, so that a watermark always fits the
``WATERMARK_BYTES`` a state file is read within): when more dossiers than that changed
within the margin of the latest change (a bulk update sharing one stamp), it names those
of the latest stamps, and the others come again next run, said in ``report.warnings``.
Each change is delivered at least once, never lost; exactly once unless the edge
overflows. The tracker's own memory is bounded the same way.

``margin`` is at most ``MAX_MARGIN`` (366 days): a wider one is a mistake (seconds given
as days), not clock skew. Stamps and watermarks may lie anywhere in datetime's range
(year 1 to 9999): a bound that would fall outside it is clamped to its edge, so a
watermark within the margin of year 1 simply reads everything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

import attrs

from ._converter import structure_many
from ._exceptions import InvalidInputError
from ._pagination import Scan, ScanReport
from ._protocol import parse_datetime
from .models.scans import MAX_EDGE, Watermark, bounded_edge, check_watermark_filters, edge_id

__all__ = ["DEFAULT_MARGIN", "MAX_MARGIN", "ChangeTracker", "ChangeWindow", "Changes"]

T = TypeVar("T")

_log = logging.getLogger("eattest_async")

DEFAULT_MARGIN = dt.timedelta(minutes=10)
MAX_MARGIN = dt.timedelta(days=366)
_STAMP = "stateLastChangeDate"
_ID = "dossierId"
_COMPACT_AT = 1024  # the tracker's memory of recent changes: pruned from this size on


def _earlier(stamp: dt.datetime, margin: dt.timedelta) -> dt.datetime:
    """``stamp - margin``, or datetime.min if that is before year 1 (nothing is older)."""
    return stamp - margin if stamp - dt.datetime.min >= margin else dt.datetime.min


def _later(stamp: dt.datetime, margin: dt.timedelta) -> dt.datetime:
    """``stamp + margin``, or datetime.max if that is after year 9999 (nothing is newer)."""
    return stamp + margin if dt.datetime.max - stamp >= margin else dt.datetime.max


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
    ceiling: dt.datetime  # the run's start plus margin: no stamp beyond it is trusted
    warnings: tuple[str, ...] = ()
    environment: str | None = None  # environment_id() of the service synced
    since_account: int | None = None  # the account the watermark names: checked once known

    @classmethod
    def of(
        cls,
        since: Watermark | Mapping[str, Any] | dt.datetime | dt.date | None,
        *,
        margin: dt.timedelta,
        filters: tuple[tuple[str, str], ...],
        now: dt.datetime | None = None,
        account: int | None = None,
        environment: str | None = None,
    ) -> ChangeWindow:
        """``now``: the run's start, naive local time (``datetime.now()`` by default);
        ``account`` (if known yet) and ``environment``: those synced, which a watermark
        made for another refuses (one written before they were kept is not checked)."""
        if not isinstance(margin, dt.timedelta) or margin < dt.timedelta(0):
            raise InvalidInputError("margin", "expected a non-negative timedelta")
        if margin > MAX_MARGIN:
            raise InvalidInputError("margin", f"at most {MAX_MARGIN.days} days")
        check_watermark_filters(filters)  # now, not when the run is over
        if isinstance(since, Mapping):
            since = Watermark.from_json(since)
        edge: frozenset[tuple[int, str]] = frozenset()
        since_account = None
        if isinstance(since, Watermark):
            if since.filters != filters:
                raise InvalidInputError("since", "this watermark was made with other filters")
            # Another account's latest change would hide this one's older changes for good.
            since.check_identity(account=account, environment=environment)
            since_account = since.account
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
        ceiling = _later(dt.datetime.now() if now is None else now, margin)
        warnings: tuple[str, ...] = ()
        if since is not None and since > ceiling:
            warnings = (
                f"the watermark {since.isoformat()} is in the future (after "
                f"{ceiling.isoformat()}): not trusted, every dossier is read again",
            )
            since, edge = None, frozenset()
        return cls(
            since=since,
            margin=margin,
            edge=edge,
            filters=filters,
            ceiling=ceiling,
            warnings=warnings,
            environment=environment,
            since_account=since_account,
        )

    def query_filters(self) -> dict[str, Any]:
        """The ``stateLastChangeDate`` filter (a date: the API's precision); none when
        the window starts at year 1 (everything: no need to send the API such a date)."""
        if self.since is None:
            return {}
        start = _earlier(self.since, self.margin)
        if start == dt.datetime.min:
            return {}
        return {"state_last_change_date": start.date()}


class ChangeTracker:
    """Pure: which items a run delivers, and the watermark it leaves."""

    def __init__(self, window: ChangeWindow) -> None:
        self.window = window
        start = None if window.since is None else _earlier(window.since, window.margin)
        self._from = start  # nothing older is delivered
        self.latest: dt.datetime | None = window.since
        self._floor = start  # latest - margin, moved with latest (not computed per item)
        self._recent: dict[int, tuple[dt.datetime, str]] = {}  # within margin of latest
        self._compact_at = _COMPACT_AT
        self.left_out = 0  # recent changes the edge had no room for: they come again
        self._left_out_latest: dt.datetime | None = None
        self.skipped_older = 0
        self.skipped_seen = 0
        self.future = 0  # items stamped after the window's ceiling: delivered, not trusted
        self.unstamped = 0  # items without a usable stamp: delivered, again every run
        self.latest_future: dt.datetime | None = None

    def admit(self, item: Mapping[str, Any]) -> bool:
        """Deliver ``item``? (changed within the window, not delivered last time)."""
        stamp = _stamp(item.get(_STAMP))
        item_id = item.get(_ID)
        if stamp is None:
            # Cannot be placed: the server says it changed, so it goes (every run: said).
            self.unstamped += 1
            return True
        text = stamp.isoformat()
        if self._from is not None and stamp < self._from:
            self.skipped_older += 1
            return False
        if stamp > self.window.ceiling:
            # A broken node's clock: if trusted, it would hide every later change.
            self.future += 1
            if self.latest_future is None or stamp > self.latest_future:
                self.latest_future = stamp
            return True
        # An id a watermark cannot hold (not an integer from 0 to 2**62): delivered, not
        # remembered, so it comes again next run rather than spoil the state file.
        if edge_id(item_id):
            self._remember(item_id, stamp, text)
            if (item_id, text) in self.window.edge:
                self.skipped_seen += 1
                return False
        return True

    def _remember(self, item_id: int, stamp: dt.datetime, text: str) -> None:
        if self.latest is None or stamp > self.latest:
            self.latest = stamp
            self._floor = _earlier(stamp, self.window.margin)
        assert self._floor is not None
        if stamp >= self._floor:
            self._recent[item_id] = (stamp, text)
            if len(self._recent) >= self._compact_at:
                self._compact()

    def _compact(self) -> None:
        """Keep what the edge may name: within the margin, at most MAX_EDGE, the latest.

        Memory stays below 2 x MAX_EDGE changes however many share a stamp; compacting
        again only once the size doubled keeps it amortised O(log n) per item."""
        assert self.latest is not None
        floor = _earlier(self.latest, self.window.margin)
        live = sorted((v[0], k, v[1]) for k, v in self._recent.items() if v[0] >= floor)
        if len(live) > MAX_EDGE:
            dropped = live[:-MAX_EDGE]
            live = live[-MAX_EDGE:]
            self.left_out += len(dropped)
            if self._left_out_latest is None or dropped[-1][0] > self._left_out_latest:
                self._left_out_latest = dropped[-1][0]
        self._recent = {k: (stamp, text) for stamp, k, text in live}
        self._compact_at = max(_COMPACT_AT, 2 * len(self._recent))

    def _edge(self) -> tuple[tuple[tuple[int, str], ...], int]:
        """The edge the watermark names, and up to how many changes of the margin it
        leaves out (those come again next run: a duplicate, never a loss)."""
        assert self.latest is not None
        floor = _earlier(self.latest, self.window.margin)
        pairs = [(k, v[1]) for k, v in self._recent.items() if v[0] >= floor]
        if self.window.since is not None and self.latest == self.window.since:
            # Nothing newer than last time: what was at the edge then still is.
            pairs += self.window.edge
        edge, left_out = bounded_edge(pairs)
        if self._left_out_latest is not None and self._left_out_latest >= floor:
            left_out += self.left_out
        return edge, left_out

    def watermark(self, account: int | None = None) -> Watermark | None:
        """The next run's watermark, naming ``account`` and the window's environment."""
        if self.latest is None:
            return None
        edge, _ = self._edge()
        return Watermark(
            changed_at=self.latest,
            edge=edge,
            filters=self.window.filters,
            account=account,
            environment=self.window.environment,
        )

    def warnings(self) -> tuple[str, ...]:
        """What the run delivered but did not trust (the stamps in the future), and what
        the next run delivers again (more changes within the margin than an edge holds,
        dossiers without a usable stamp)."""
        out = list(self.window.warnings)
        if self.latest is not None:
            _, left_out = self._edge()
            if left_out:
                out.append(
                    f"up to {left_out} dossiers changed within {self.window.margin} of the "
                    f"latest change ({self.latest.isoformat()}) come again next run: a "
                    f"watermark names at most {MAX_EDGE}"
                )
        if self.future and self.latest_future is not None:
            out.append(
                f"{self.future} dossiers stamped in the future (up to "
                f"{self.latest_future.isoformat()}, after {self.window.ceiling.isoformat()}): "
                "delivered, but the watermark does not follow them; they come again next run"
            )
        if self.unstamped:
            out.append(
                f"{self.unstamped} dossiers without a usable {_STAMP}: delivered, and again "
                "every run (the watermark cannot place them)"
            )
        return tuple(out)


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
        since_account = self._tracker.window.since_account
        if since_account is not None:
            # The account was not known when the watermark was checked: found now, before
            # any page is asked for.
            account = await self.scan._find_account()
            if account is not None and account != since_account:
                raise InvalidInputError(
                    "since", f"this watermark was made for account {since_account}"
                )
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
        for warning in self._tracker.warnings():
            _log.warning("sync: %s", warning)

    @property
    def report(self) -> ScanReport:
        report = self.scan.report
        warnings = self._tracker.warnings()
        if not warnings:
            return report
        return attrs.evolve(report, warnings=report.warnings + warnings)

    @property
    def next_watermark(self) -> Watermark | None:
        """Where the next run starts; None unless this run went through, complete."""
        if not self.scan.report.complete:
            return None
        return self._tracker.watermark(account=self.scan._account())

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
