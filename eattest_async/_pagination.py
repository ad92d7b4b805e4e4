"""Scan[T]: walk every page of a list operation concurrently, each item exactly once.

The first pages go out together (``prefetch``); the first answer gives ``totalElements``
and the plan of the rest, fetched by up to ``concurrency`` tasks while the consumer reads,
within a window of ``2 x concurrency`` pages and never more than 3,000 items ahead (so
memory stays bounded whatever the total and the page size, and a slow consumer slows the
fetching down). Every request passes the client's rate gate and retry loop.

If ``totalElements`` moves during the scan (dossiers created or deleted meanwhile), items
may shift across page boundaries: the scan re-plans the tail, then re-reads the pages read
before the last change and drops what it already delivered (by id). The report tells.

Cleanup: the background fetches belong to the iteration. Leaving the loop by ``break``
releases them as soon as the iterator is dropped (asyncio finalises the generator); for
a deterministic end, use ``async with client.dossiers.scan(...) as scan`` or
``await scan.aclose()``. Cancellation and errors clean up at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from array import array
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterator,
    Sequence,
)
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import anyio
import attrs

from ._exceptions import EattestError, InvalidInputError, ScanError
from ._protocol import Envelope

__all__ = ["Checkpoint", "Scan", "ScanProgress", "ScanReport"]

logger = logging.getLogger("eattest_async")

T = TypeVar("T")

Order = Literal["page", "completed"]
_MAX_REPAIR_ROUNDS = 3
_STRUCTURE_SLICE = 32
# Items fetched ahead of the consumer at most: it bounds memory whatever the page size
# (pages of 1000 dossiers are about 5 MB each as models, with an 8 MB transient to decode).
_BUFFERED_ITEMS = 3000


@attrs.frozen(kw_only=True)
class Checkpoint:
    """Where a scan stands: the pages fully delivered. ``to_json()``/``from_json()`` persist it."""

    operation: str
    filters: tuple[tuple[str, str], ...]
    page_size: int
    total_elements: int | None
    done_pages: frozenset[int]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form, for ``orjson.dumps``/``json.dumps`` and ``from_json``."""
        return {
            "version": 1,
            "operation": self.operation,
            "filters": [list(f) for f in self.filters],
            "page_size": self.page_size,
            "total_elements": self.total_elements,
            "done_pages": sorted(self.done_pages),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        try:
            return cls(
                operation=str(data["operation"]),
                filters=tuple((str(k), str(v)) for k, v in data["filters"]),
                page_size=int(data["page_size"]),
                total_elements=None
                if data["total_elements"] is None
                else int(data["total_elements"]),
                done_pages=frozenset(int(p) for p in data["done_pages"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError("resume_from", f"not a scan checkpoint ({exc})") from None


@attrs.frozen(kw_only=True)
class ScanProgress:
    """A snapshot of a running scan (also passed to ``on_progress``)."""

    pages_done: int
    pages_total: int | None
    items: int
    duplicates_dropped: int
    retries: dict[str, int]
    cooldown_remaining: float
    elapsed: float


@attrs.frozen(kw_only=True)
class ScanReport:
    """What a finished (or stopped) scan did."""

    complete: bool
    pages_fetched: int
    items: int
    duplicates_dropped: int
    initial_total: int | None
    final_total: int | None
    drift: bool
    repaired_pages: int
    retries: dict[str, int]
    elapsed: float


@attrs.define
class _PageResult(Generic[T]):
    page: int
    items: tuple[T, ...]
    total: int | None


class Scan(Generic[T], AsyncIterator[T]):
    """Async iterator over every item of a list operation; see the module docstring."""

    def __init__(
        self,
        *,
        operation: str,
        filters: tuple[tuple[str, str], ...],
        fetch: Callable[[int, int], Awaitable[Envelope]],
        convert: Callable[[list[Any]], tuple[T, ...]],
        key: Callable[[T], Hashable],
        retries: Callable[[], dict[str, int]],
        cooldown: Callable[[], float],
        page_size: int,
        concurrency: int,
        order: Order = "page",
        resume_from: Checkpoint | dict[str, Any] | None = None,
        on_progress: Callable[[ScanProgress], object] | None = None,
        prefetch: int | None = None,
    ) -> None:
        if order not in ("page", "completed"):
            raise InvalidInputError("order", "expected 'page' or 'completed'")
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= 256
        ):
            raise InvalidInputError("concurrency", "expected an integer from 1 to 256")
        checkpoint = (
            Checkpoint.from_json(resume_from) if isinstance(resume_from, dict) else resume_from
        )
        if checkpoint is not None:
            if checkpoint.operation != operation or checkpoint.filters != filters:
                raise InvalidInputError("resume_from", "this checkpoint belongs to another scan")
            if checkpoint.page_size != page_size:
                raise InvalidInputError(
                    "resume_from", f"the checkpoint was made with page_size {checkpoint.page_size}"
                )
        self._operation = operation
        self._filters = filters
        self._fetch = fetch
        self._convert = convert
        self._key = key
        self._retries_now = retries
        self._cooldown = cooldown
        self.page_size = page_size
        self.concurrency = concurrency
        self.order: Order = order
        self._on_progress = on_progress
        if prefetch is not None and (
            isinstance(prefetch, bool)
            or not isinstance(prefetch, int)
            or not 1 <= prefetch <= concurrency
        ):
            raise InvalidInputError("prefetch", "expected an integer from 1 to concurrency")
        # Pages ahead of the consumer (in flight or waiting): 2 x concurrency, fewer when
        # pages are large, so that memory stays O(_BUFFERED_ITEMS) whatever the page size.
        self._window = max(2, min(2 * concurrency, _BUFFERED_ITEMS // page_size))
        self._in_flight_max = min(concurrency, self._window)
        self._prefetch = (
            self._in_flight_max if prefetch is None else min(prefetch, self._in_flight_max)
        )
        self._done: set[int] = set(checkpoint.done_pages) if checkpoint else set()
        self._initial_total: int | None = checkpoint.total_elements if checkpoint else None
        self._total: int | None = self._initial_total
        self._pages_fetched = 0
        self._items = 0
        self._duplicates = 0
        self._repaired = 0
        self._drift = False
        self._complete = False
        self._started: float | None = None
        self._finished: float | None = None
        self._retries_at_start: dict[str, int] = {}
        self._iterator: weakref.ref[AsyncGenerator[T, None]] | None = None
        self._strong: AsyncGenerator[T, None] | None = None
        self._managed = False
        self._iterated = False

    def __repr__(self) -> str:
        return f"<Scan {self._operation} page_size={self.page_size} concurrency={self.concurrency}>"

    # -- the iterator protocol ------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[T]:
        return self._generator()

    async def __anext__(self) -> T:
        # ``await anext(scan)`` without ``async for``: the scan holds its generator itself.
        generator = self._strong if self._strong is not None else self._generator(hold=True)
        return await generator.__anext__()

    def _generator(self, *, hold: bool = False) -> AsyncGenerator[T, None]:
        if self._iterated:
            raise RuntimeError(
                "a scan is iterated once; start another (resume_from=scan.checkpoint())"
            )
        self._iterated = True
        generator = self._run()
        if hold or self._managed:
            # Inside ``async with`` (or driven by anext()): held here, so that leaving the
            # block, or aclose(), ends it at once.
            self._strong = generator
        else:
            # A bare loop: held weakly, so that when the caller drops the loop (break),
            # asyncio finalises the generator and its requests go.
            self._iterator = weakref.ref(generator)
        return generator

    async def aclose(self) -> None:
        """Stop the scan now: cancel in-flight requests, release every connection."""
        generator = self._strong or (self._iterator() if self._iterator is not None else None)
        if generator is not None:
            await generator.aclose()

    async def __aenter__(self) -> Scan[T]:
        self._managed = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- state ----------------------------------------------------------------------------

    def _retries(self) -> dict[str, int]:
        now = self._retries_now()
        return {
            k: v - self._retries_at_start.get(k, 0)
            for k, v in now.items()
            if v - self._retries_at_start.get(k, 0)
        }

    def _elapsed(self) -> float:
        if self._started is None:
            return 0.0
        return (self._finished or time.monotonic()) - self._started

    @property
    def pages_total(self) -> int | None:
        if self._total is None:
            return None
        return max(1, math.ceil(self._total / self.page_size))

    @property
    def progress(self) -> ScanProgress:
        return ScanProgress(
            pages_done=len(self._done),
            pages_total=self.pages_total,
            items=self._items,
            duplicates_dropped=self._duplicates,
            retries=self._retries(),
            cooldown_remaining=self._cooldown(),
            elapsed=self._elapsed(),
        )

    @property
    def report(self) -> ScanReport:
        return ScanReport(
            complete=self._complete,
            pages_fetched=self._pages_fetched,
            items=self._items,
            duplicates_dropped=self._duplicates,
            initial_total=self._initial_total,
            final_total=self._total,
            drift=self._drift,
            repaired_pages=self._repaired,
            retries=self._retries(),
            elapsed=self._elapsed(),
        )

    def checkpoint(self) -> Checkpoint:
        """The pages fully delivered so far; pass it as ``resume_from=`` to fetch only the rest."""
        return Checkpoint(
            operation=self._operation,
            filters=self._filters,
            page_size=self.page_size,
            total_elements=self._total,
            done_pages=frozenset(self._done),
        )

    # -- the work ---------------------------------------------------------------------------

    async def _fetch_page(self, page: int) -> _PageResult[T]:
        envelope = await self._fetch(page, self.page_size)
        content = envelope.content if isinstance(envelope.content, list) else []
        if len(content) <= _STRUCTURE_SLICE:
            return _PageResult(page, self._convert(content), envelope.total_elements)
        items: list[T] = []
        for start in range(0, len(content), _STRUCTURE_SLICE):
            end = start + _STRUCTURE_SLICE
            items.extend(self._convert(content[start:end]))
            content[start:end] = [None] * len(content[start:end])  # the decoded dicts can go now
            # Let the loop breathe between slices: a 429 waiting in a socket is read (and
            # the gate closed) within milliseconds, not after every page in hand is built.
            await asyncio.sleep(0)
        return _PageResult(page, tuple(items), envelope.total_elements)

    def _note_total(self, total: int | None) -> None:
        if total is None:
            return
        if self._initial_total is None:
            self._initial_total = total
        if self._total is not None and total != self._total:
            if not self._drift:
                logger.warning(
                    "%s changed during the scan (%s -> %s items): re-planning and "
                    "re-reading the affected pages",
                    self._operation,
                    self._total,
                    total,
                )
            self._drift = True
        self._total = total

    def _error(self, page: int, exc: BaseException) -> ScanError:
        done = sorted(self._done)
        return ScanError(
            f"scan of {self._operation} stopped on page {page}: {exc} "
            f"({len(done)} pages complete; resume with resume_from=scan.checkpoint())",
            completed_pages=done,
            checkpoint=self.checkpoint(),
        )

    async def _run(self) -> AsyncGenerator[T, None]:
        self._started = time.monotonic()
        self._retries_at_start = dict(self._retries_now())
        in_flight: dict[int, asyncio.Task[_PageResult[T]]] = {}
        delivered: list[array[int] | list[Hashable]] = []  # keys delivered, page by page
        seen: set[Hashable] | None = None  # built only once drift makes duplicates possible
        totals_when_read: dict[int, int | None] = {}

        def record(result: _PageResult[T]) -> list[T]:
            nonlocal seen
            self._pages_fetched += 1
            self._note_total(result.total)
            totals_when_read[result.page] = result.total
            if self._drift and seen is None:
                seen = {k for keys in delivered for k in keys}
            fresh: list[T] = []
            keys: list[Hashable] = []
            for item in result.items:
                item_key = self._key(item)
                if seen is not None:
                    if item_key in seen:
                        self._duplicates += 1
                        continue
                    seen.add(item_key)
                keys.append(item_key)
                fresh.append(item)
            delivered.append(_compact(keys))
            return fresh

        def finish_page(page: int, count: int) -> None:
            self._done.add(page)
            self._items += count
            if self._on_progress is not None:
                self._on_progress(self.progress)

        def handover(page: int, fresh: list[T]) -> Iterator[T]:
            # A page counts as delivered when its last item is handed over: a consumer that
            # stops right after it must not see the page fetched again on resume.
            if not fresh:
                finish_page(page, 0)
            for index, item in enumerate(fresh):
                if index == len(fresh) - 1:
                    finish_page(page, len(fresh))
                yield item

        try:
            planned = self.pages_total  # known only when resuming
            missing = [p for p in range(planned) if p not in self._done] if planned else [0]
            if not missing:
                self._complete = True
                return
            if planned is None:
                # Speculate: the pages after the first go out with it, instead of a round trip
                # later; those that turn out to lie past the end are cancelled (cheap, empty).
                for page_number in range(1, self._prefetch):
                    in_flight[page_number] = asyncio.ensure_future(self._fetch_page(page_number))
            # The first page still missing tells the total: the plan of the rest.
            first = await self._guarded(missing[0])
            for item in handover(first.page, record(first)):
                yield item
            if self._total is None:  # no totalElements: walk on until a short page
                page = first
                while len(page.items) >= self.page_size:
                    page = await self._guarded(page.page + 1, in_flight)
                    for item in handover(page.page, record(page)):
                        yield item
                self._complete = True
                return
            last_page = self.pages_total or 1
            beyond = [in_flight.pop(p) for p in list(in_flight) if p >= last_page]
            for task in beyond:
                task.cancel()
            if beyond:
                await asyncio.gather(*beyond, return_exceptions=True)
            pending = [p for p in range(self.pages_total or 1) if p not in self._done]
            rounds = 0
            stale: list[int] = []
            while pending:
                async for item in self._fetch_all(pending, in_flight, record, handover):
                    yield item
                # Re-plan: pages the total now implies, and those read before the last change.
                last = self.pages_total or 1
                missing = [p for p in range(last) if p not in self._done]
                stale = [p for p, t in totals_when_read.items() if t != self._total and p < last]
                if stale and rounds < _MAX_REPAIR_ROUNDS:
                    rounds += 1
                    self._repaired += len(stale)
                    for page_number in stale:
                        self._done.discard(page_number)
                        del totals_when_read[page_number]
                    pending = sorted(set(missing) | set(stale))
                else:
                    pending = missing
            self._complete = True
            if stale:
                logger.warning(
                    "%s kept changing: %d pages may hold items shifted during the scan",
                    self._operation,
                    len(stale),
                )
        finally:
            self._finished = time.monotonic()
            for task in in_flight.values():
                task.cancel()
            if in_flight:
                # Shielded: an outer cancel scope must not cut the cleanup short.
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(*in_flight.values(), return_exceptions=True)
            in_flight.clear()

    async def _guarded(
        self, page: int, in_flight: dict[int, asyncio.Task[_PageResult[T]]] | None = None
    ) -> _PageResult[T]:
        """One page, from a request already sent for it if there is one."""
        try:
            task = in_flight.pop(page, None) if in_flight is not None else None
            return await (task if task is not None else self._fetch_page(page))
        except EattestError as exc:
            raise self._error(page, exc) from exc

    async def _fetch_all(
        self,
        pages: Sequence[int],
        in_flight: dict[int, asyncio.Task[_PageResult[T]]],
        record: Callable[[_PageResult[T]], list[T]],
        handover: Callable[[int, list[T]], Iterator[T]],
    ) -> AsyncGenerator[T, None]:
        """Fetch ``pages`` with up to ``concurrency`` tasks, at most a window ahead."""
        queue = list(pages)
        position = 0  # next page to dispatch (index into queue)
        consumed = 0  # next page to deliver in page order (index into queue)
        window = self._window
        ready: dict[int, _PageResult[T]] = {}
        while consumed < len(queue):
            while (
                position < len(queue)
                and len(in_flight) < self._in_flight_max
                and position - consumed < window
            ):
                page = queue[position]
                if page not in in_flight and page not in ready:  # not already sent speculatively
                    in_flight[page] = asyncio.ensure_future(self._fetch_page(page))
                position += 1
            if self.order == "page":
                wanted = queue[consumed]
                if wanted not in ready:
                    await asyncio.wait([in_flight[wanted]])
            else:
                await asyncio.wait(list(in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
            for page, task in list(in_flight.items()):
                if task.done():
                    del in_flight[page]
                    try:
                        ready[page] = task.result()
                    except EattestError as exc:
                        raise self._error(page, exc) from exc
            deliverable = [queue[consumed]] if self.order == "page" else sorted(ready)
            for page in deliverable:
                if page not in ready:
                    continue
                result = ready.pop(page)
                consumed += 1
                for item in handover(page, record(result)):
                    yield item


def _compact(keys: list[Hashable]) -> array[int] | list[Hashable]:
    """Integer ids take 8 bytes each in an array: a million of them stay small."""
    if keys and all(type(k) is int for k in keys):
        return array("q", keys)  # type: ignore[arg-type]
    return keys
