"""Scan[T]: every item of a list operation exactly once, or a clear error, or an honest report.

What to ask for and what each answer means is decided by the pure :class:`ScanPlan`
(``_scanplan.py``); this driver only keeps tasks and the iterator's lifetime:

- up to ``concurrency`` requests in flight, always, while the consumer keeps up; what is
  held ahead of the consumer (answers structured and waiting) is bounded by items
  (``max(3,000, concurrency x page size)``): past it, no new request leaves until the
  consumer catches up, so memory follows the consumer's lag, not the total;
- each answer is deduplicated by id and structured in its own task as soon as it arrives
  (structuring overlaps the network waits of the others), then handed over as a batch
  (``scan.batches()``) or item by item (``async for``); one page at a time is decoded and
  structured, the others' answers wait as bytes (a dossier: 2.4 KB as bytes, 8 KB decoded,
  4.7 KB structured), so that pages in flight never sit decoded side by side;
- every request passes the client's rate gate and retry loop.

Cleanup: the background fetches belong to the iteration. Leaving the loop by ``break``
releases them as soon as the iterator is dropped (asyncio finalises the generator); for
a deterministic end, use ``async with client.dossiers.scan(...) as scan`` or
``await scan.aclose()``. Cancellation and errors clean up at once.

At the end, ``scan.report.complete`` is True only when every item the server last
announced was delivered once; otherwise ``scan.report.problems`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
)
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import anyio
import attrs

from ._exceptions import (
    EattestError,
    InvalidInputError,
    ScanError,
    UnexpectedResponseError,
    UsageError,
)
from ._protocol import DecodeTurn, Envelope
from ._ratelimit import RateSnapshot
from ._scanplan import PageAnswer, PageRequest, Received, ScanPlan
from ._validation import check_callable, check_concurrency
from .models.scans import Checkpoint

__all__ = ["Checkpoint", "Scan", "ScanProgress", "ScanReport"]

logger = logging.getLogger("eattest_async")

T = TypeVar("T")

Order = Literal["page", "completed"]
_STRUCTURE_SLICE = 250
# Items structured and waiting for the consumer, at least (see the module docstring).
_AHEAD_ITEMS = 3000


@attrs.frozen(kw_only=True)
class ScanProgress:
    """A snapshot of a running scan (also passed to ``on_progress``).

    The rate figures are the client's (every request it sends): ``request_rate`` achieved
    requests/s, ``rate_limit`` requests/s (announced, learned or configured: see
    ``rate_limit_source``; None when unknown), ``responses_429`` met during the scan.
    """

    pages_done: int
    pages_total: int | None
    items: int
    duplicates_dropped: int
    retries: dict[str, int]
    cooldown_remaining: float
    elapsed: float
    request_rate: float = 0.0
    rate_limit: float | None = None
    rate_limit_source: str | None = None
    responses_429: int = 0


@attrs.frozen(kw_only=True)
class ScanReport:
    """What a finished (or stopped) scan did.

    ``complete`` is True only when every item of the last announced total was delivered,
    once; otherwise ``problems`` says why (the listing changed and kept changing, items
    missing, the server contradicted itself, the scan stopped early) and ``missing``
    counts the items of that total the scan did not see. ``duplicates_dropped`` counts
    the items read but not delivered as delivered already: in this scan, or on a resume
    at the positions the checkpoint counts as done.
    """

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
    missing: int = 0
    problems: tuple[str, ...] = ()
    page_size: int | None = None  # as the server used it
    request_rate: float = 0.0
    rate_limit: float | None = None
    rate_limit_source: str | None = None
    responses_429: int = 0
    warnings: tuple[str, ...] = ()  # what is doubtful without making the scan incomplete


class _Turn:
    """One page's turn on the scan's decoding lock (a :class:`DecodeTurn`): taken by the
    pipeline right before it decodes the page, given back once the page is structured."""

    __slots__ = ("_held", "_lock")

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock
        self._held = False

    async def acquire(self) -> None:
        await self._lock.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


@attrs.define
class _Arrived(Generic[T]):
    request: PageRequest
    received: Received
    items: tuple[T, ...]
    # The decoding turn, still held when the driver waited for this answer: given back
    # when the driver takes it (see ``Scan._fetch_page``).
    turn: _Turn | None = None

    def take(self) -> _Arrived[T]:
        if self.turn is not None:
            self.turn.release()
            self.turn = None
        return self


def _drop(task: asyncio.Task[_Arrived[Any]]) -> None:
    """A finished fetch whose answer is not wanted: its turn given back, if it holds one."""
    if not task.cancelled() and task.exception() is None:
        task.result().take()


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


class Scan(Generic[T], AsyncIterator[T]):
    """Async iterator over every item of a list operation; see the module docstring."""

    def __init__(
        self,
        *,
        operation: str,
        filters: tuple[tuple[str, str], ...],
        fetch: Callable[[int, int, DecodeTurn | None], Awaitable[Envelope]],
        convert: Callable[[list[Any]], tuple[T, ...]],
        key: Callable[[Any], Hashable | None],
        retries: Callable[[], dict[str, int]],
        cooldown: Callable[[], float],
        page_size: int,
        concurrency: int,
        order: Order = "page",
        resume_from: Checkpoint | dict[str, Any] | None = None,
        on_progress: Callable[[ScanProgress], object] | None = None,
        prefetch: int | None = None,
        rate: Callable[[], RateSnapshot] | None = None,
        environment: str | None = None,
        known_account: Callable[[], int | None] | None = None,
        discover_account: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        if order not in ("page", "completed"):
            raise InvalidInputError("order", "expected 'page' or 'completed'")
        concurrency = check_concurrency(concurrency, "concurrency")
        if on_progress is not None:  # now, not when first called, pages into the scan
            check_callable(on_progress, "on_progress")
        checkpoint = (
            Checkpoint.from_json(resume_from)
            if isinstance(resume_from, dict)
            else resume_from
            if resume_from is None or isinstance(resume_from, Checkpoint)
            else None
        )
        if resume_from is not None and checkpoint is None:
            raise InvalidInputError("resume_from", "expected a Checkpoint or its to_json()")
        if checkpoint is not None:
            if checkpoint.operation != operation or checkpoint.filters != filters:
                raise InvalidInputError("resume_from", "this checkpoint belongs to another scan")
            if checkpoint.page_size != page_size:
                raise InvalidInputError(
                    "resume_from", f"the checkpoint was made with page_size {checkpoint.page_size}"
                )
            # Another account's or service's positions would skip this one's items: refused
            # now, or once the account is known, before any page is asked (_identify).
            checkpoint.check_identity(
                account=known_account() if known_account is not None else None,
                environment=environment,
            )
        if prefetch is not None and (
            isinstance(prefetch, bool)
            or not isinstance(prefetch, int)
            or not 1 <= prefetch <= concurrency
        ):
            raise InvalidInputError("prefetch", "expected an integer from 1 to concurrency")
        self._operation = operation
        self._fetch = fetch
        self._convert = convert
        self._key = key
        self._retries_now = retries
        self._cooldown = cooldown
        self._rate = rate
        self.page_size = page_size
        self.concurrency = concurrency
        self.order: Order = order
        self._on_progress = on_progress
        self._ahead_items = max(_AHEAD_ITEMS, concurrency * page_size)
        self._plan = ScanPlan(
            operation=operation,
            filters=filters,
            page_size=page_size,
            lookahead=concurrency if prefetch is None else prefetch,
            resume_from=checkpoint,
        )
        self._plan.environment = environment
        self._resumed = checkpoint
        self._known_account = known_account
        self._discover_account = discover_account
        self._decoding: asyncio.Lock | None = None  # made in the scan's own event loop
        # The driver's tasks while it waits for the first to finish (None: it does not),
        # and what wakes it: set by the first of them that ends.
        self._waiting_on: dict[int, asyncio.Task[_Arrived[T]]] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._finished = False
        self._started: float | None = None
        self._stopped: float | None = None
        self._retries_at_start: dict[str, int] = {}
        self._rate_at_start: RateSnapshot | None = None
        self._iterator: weakref.ref[AsyncGenerator[Any, None]] | None = None
        self._strong: AsyncGenerator[Any, None] | None = None
        self._managed = False
        self._iterated = False
        self._warned_drift = False
        self._by_anext = False

    def __repr__(self) -> str:
        return f"<Scan {self._operation} page_size={self.page_size} concurrency={self.concurrency}>"

    # -- the iterator protocol ------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[T]:
        started = self._strong
        if self._by_anext and started is not None and getattr(started, "ag_frame", None):
            return started  # started with anext(scan): the loop goes on from there
        generator: AsyncIterator[T] = self._hold(self._items)
        return generator

    async def __anext__(self) -> T:
        # ``await anext(scan)`` without ``async for``: the scan holds its generator itself.
        if self._strong is None:
            self._by_anext = True
        generator = self._strong if self._strong is not None else self._hold(self._items, True)
        item: T = await generator.__anext__()
        return item

    def batches(self) -> AsyncIterator[tuple[T, ...]]:
        """The items page by page (a tuple per page, duplicates dropped): less overhead."""
        generator: AsyncIterator[tuple[T, ...]] = self._hold(self._batches)
        return generator

    def _hold(self, factory: Callable[[], AsyncGenerator[Any, None]], hold: bool = False) -> Any:
        if self._iterated:
            raise UsageError(
                "a scan is iterated once; start another (resume_from=scan.checkpoint())"
            )
        self._iterated = True
        generator = factory()
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
        out = {
            k: v - self._retries_at_start.get(k, 0)
            for k, v in now.items()
            if v - self._retries_at_start.get(k, 0)
        }
        if self._plan.bad_pages:
            out["bad-page"] = self._plan.bad_pages
        return out

    def _elapsed(self) -> float:
        if self._started is None:
            return 0.0
        return (self._stopped or time.monotonic()) - self._started

    def _rate_figures(self) -> dict[str, Any]:
        """The client's pacing figures (``RateGate.snapshot()``), 429s counted since the start."""
        if self._rate is None:
            return {}
        snapshot = self._rate()
        before = self._rate_at_start.responses_429 if self._rate_at_start is not None else 0
        return {
            "request_rate": snapshot.request_rate,
            "rate_limit": snapshot.limit,
            "rate_limit_source": snapshot.limit_source,
            "responses_429": snapshot.responses_429 - before,
        }

    @property
    def pages_total(self) -> int | None:
        return self._plan.pages_total

    @property
    def progress(self) -> ScanProgress:
        plan = self._plan
        return ScanProgress(
            pages_done=plan.pages_delivered,
            pages_total=plan.pages_total,
            items=plan.items,
            duplicates_dropped=plan.duplicates,
            retries=self._retries(),
            cooldown_remaining=self._cooldown(),
            elapsed=self._elapsed(),
            **self._rate_figures(),
        )

    @property
    def report(self) -> ScanReport:
        plan = self._plan
        problems = plan.problems(finished=self._finished)
        return ScanReport(
            complete=self._finished and not problems,
            pages_fetched=plan.pages_fetched,
            items=plan.items,
            duplicates_dropped=plan.duplicates,
            initial_total=plan.initial_total,
            final_total=plan.total,
            drift=plan.drift_events > 0,
            repaired_pages=plan.repaired_pages,
            retries=self._retries(),
            elapsed=self._elapsed(),
            missing=plan.missing,
            problems=problems,
            page_size=plan.size,
            **self._rate_figures(),
        )

    def checkpoint(self) -> Checkpoint:
        """What the consumer has so far; pass it as ``resume_from=`` to fetch only the rest.

        It names the account and (as a digest of the base URL) the service scanned: a
        resume on another is refused (checkpoints written before they were named are
        still read, and cannot be checked)."""
        self._account()
        return self._plan.checkpoint()

    def _account(self) -> int | None:
        """The account scanned, if known yet (the plan keeps it for its checkpoints)."""
        plan = self._plan
        if plan.account is None and self._known_account is not None:
            plan.account = self._known_account()
        if plan.account is None and self._resumed is not None:
            return self._resumed.account  # not iterated yet: the checkpoint's, kept
        return plan.account

    async def _find_account(self) -> int | None:
        """The account scanned, discovered if not known yet (as the first page would)."""
        plan = self._plan
        if plan.account is None and self._known_account is not None:
            plan.account = self._known_account()
        if plan.account is None and self._discover_account is not None:
            plan.account = await self._discover_account()
        return plan.account

    async def _identify(self) -> None:
        """Before the first page is asked for: a checkpoint naming an account is checked
        against this one (discovered if need be)."""
        checkpoint = self._resumed
        if checkpoint is not None and checkpoint.account is not None:
            account = await self._find_account()
            checkpoint.check_identity(account=account, environment=self._plan.environment)

    # -- the work ---------------------------------------------------------------------------

    async def _fetch_page(self, request: PageRequest) -> _Arrived[T]:
        if self._decoding is None:
            self._decoding = asyncio.Lock()
        turn = _Turn(self._decoding)
        try:
            try:
                arrived = await self._decode_page(request, turn)
            except BaseException:
                turn.release()
                raise
            waiting = self._waiting_on
            if waiting is not None and request.seq in waiting:
                # The driver waits for this answer, and wakes up now: the next page is
                # decoded once it has taken this one (and, in page order, often handed it
                # over and seen it consumed), so that decoded pages do not pile up side by
                # side waiting for the consumer (old by then, every one costs the GC a
                # full walk, and freeing it costs several times more once out of cache).
                arrived.turn = turn
            else:
                turn.release()
            return arrived
        finally:
            # The driver woken at once, not through the task's done callbacks and then
            # asyncio.wait's (two turns of the event loop later, other pages decoded by then).
            wake = self._wake
            if wake is not None and not wake.done():
                wake.set_result(None)

    async def _decode_page(self, request: PageRequest, turn: _Turn) -> _Arrived[T]:
        envelope = await self._fetch(request.page, request.size, turn)
        content = envelope.content
        keys: list[Hashable | None] = []
        if isinstance(content, list):
            keys = list(map(self._key, content))
            if None in keys:  # only an item without an id may be no object at all
                self._plan.not_objects += sum(1 for item in content if not isinstance(item, dict))
        answer = PageAnswer(
            content_type="list" if isinstance(content, list) else _json_type(content),
            count=len(keys),
            page=envelope.page,
            size=envelope.size,
            total=envelope.total_elements,
        )
        # Synchronous from the answer to the verdict: no other page interleaves.
        received = self._plan.receive(request, answer, keys)
        if received.error is not None:
            raise UnexpectedResponseError(
                f"unexpected response: {received.error}",
                status=200,
                method="GET",
                path=self._operation,
            )
        if not received.fresh:
            return _Arrived(request, received, ())
        assert isinstance(content, list)
        fresh = (
            content if len(received.fresh) == len(content) else [content[i] for i in received.fresh]
        )
        del content
        if len(fresh) <= _STRUCTURE_SLICE:
            return _Arrived(request, received, self._convert(fresh))
        # In slices, each slice's decoded dicts released once structured, the loop given a
        # turn between slices (a 429 read meanwhile closes the gate before more requests go;
        # a page of 1000 at once kept it busy ~60 ms, and requests that had passed the gate
        # reached the server long after a 429 it had sent). Meanwhile the other pages'
        # answers are read, and wait for their turn as bytes.
        items: list[T] = []
        for start in range(0, len(fresh), _STRUCTURE_SLICE):
            end = start + _STRUCTURE_SLICE
            items.extend(self._convert(fresh[start:end]))
            fresh[start:end] = [None] * len(fresh[start:end])  # the decoded dicts can go now
            await asyncio.sleep(0)
        return _Arrived(request, received, tuple(items))

    def _error(self, request: PageRequest, exc: BaseException) -> ScanError:
        checkpoint = self.checkpoint()
        return ScanError(
            f"scan of {self._operation} stopped on page {request.page} "
            f"(size {request.size}): {exc} ({checkpoint.items_done} items delivered; "
            "resume with resume_from=scan.checkpoint())",
            checkpoint=checkpoint,
        )

    def _handed_over(self, arrived: _Arrived[T]) -> None:
        self._plan.handed_over(arrived.request, len(arrived.items))
        if self._on_progress is not None:
            self._on_progress(self.progress)

    async def _items(self) -> AsyncGenerator[T, None]:
        async with contextlib.aclosing(self._arrivals()) as arrivals:
            async for arrived in arrivals:
                items = arrived.items
                if not items:
                    self._handed_over(arrived)
                    continue
                last = len(items) - 1
                for index in range(last):
                    yield items[index]
                # A page counts as delivered when its last item is handed over: a consumer
                # that stops right after it must not see the page fetched again on resume.
                self._handed_over(arrived)
                item = items[last]
                # Not held while the next page is awaited: it can go once consumed, young
                # (held, it lived on through the next decodes into the GC's old generation).
                del arrived, items
                yield item

    async def _batches(self) -> AsyncGenerator[tuple[T, ...], None]:
        async with contextlib.aclosing(self._arrivals()) as arrivals:
            async for arrived in arrivals:
                self._handed_over(arrived)
                if arrived.items:
                    yield arrived.items

    async def _arrivals(self) -> AsyncGenerator[_Arrived[T], None]:
        """The answers, in page order (or as they come), each once, until the plan is done."""
        plan = self._plan
        self._started = time.monotonic()
        self._retries_at_start = dict(self._retries_now())
        self._rate_at_start = self._rate() if self._rate is not None else None
        await self._identify()
        tasks: dict[int, asyncio.Task[_Arrived[T]]] = {}
        requests: dict[int, PageRequest] = {}
        dying: set[asyncio.Task[_Arrived[T]]] = set()
        ready: dict[int, _Arrived[T]] = {}
        ready_items = 0
        idle = 0
        try:
            while True:
                # Answers in: their slots are free again at once, whatever the order.
                for seq in [s for s, t in tasks.items() if t.done()]:
                    if seq in tasks:  # not cancelled meanwhile as obsolete
                        ready_items += self._collect(seq, tasks, requests, ready, dying)
                head = self._deliverable(ready, tasks)
                sent = 0
                if ready_items < self._ahead_items or head is None:
                    # Past the bound, only the page the consumer waits for (in page order,
                    # a page to read again, say) may go: nothing beyond it.
                    below = None if ready_items < self._ahead_items else plan.frontier() + 1
                    for request in plan.issue(self.concurrency - len(tasks), below=below):
                        tasks[request.seq] = asyncio.ensure_future(self._fetch_page(request))
                        requests[request.seq] = request
                        sent += 1
                if head is not None:
                    arrived = ready.pop(head)
                    ready_items -= len(arrived.items)
                    yield arrived
                    del arrived  # consumed: not held while the next answers are awaited
                    continue
                if not tasks:
                    if plan.done():
                        if ready:  # what was read before the plan gave up: handed over
                            arrived = ready.pop(min(ready))
                            ready_items -= len(arrived.items)
                            yield arrived
                            del arrived
                            continue
                        self._finished = True
                        return
                    idle = 0 if sent else idle + 1
                    if idle > 2:  # pragma: no cover - a plan that neither ends nor asks
                        raise RuntimeError(f"scan plan stalled: {plan.problems(finished=False)}")
                    continue
                # Until one of the tasks ends (every task's last step sets the wake). One
                # may have ended already without a wake to set: with an eager task factory
                # (Python 3.12+) a task that fails at once ends inside its creation.
                if not any(task.done() for task in tasks.values()):
                    self._waiting_on = tasks
                    self._wake = asyncio.get_running_loop().create_future()
                    try:
                        await self._wake
                    finally:
                        self._waiting_on = self._wake = None
                for task in [t for t in dying if t.done()]:
                    dying.discard(task)
                    _drop(task)  # answered before the cancel: nothing to keep
        finally:
            self._stopped = time.monotonic()
            leftover = [*tasks.values(), *dying]
            for task in leftover:
                task.cancel()
            if leftover:
                # Shielded: an outer cancel scope must not cut the cleanup short.
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(*leftover, return_exceptions=True)
                for task in leftover:
                    _drop(task)
            if self._finished:
                problems = plan.problems(finished=True)
                if problems:
                    logger.warning(
                        "scan of %s incomplete: %s", self._operation, "; ".join(problems)
                    )

    def _collect(
        self,
        seq: int,
        tasks: dict[int, asyncio.Task[_Arrived[T]]],
        requests: dict[int, PageRequest],
        ready: dict[int, _Arrived[T]],
        dying: set[asyncio.Task[_Arrived[T]]],
    ) -> int:
        """Take the answer of task ``seq`` (done): ready to hand over; returns its items."""
        task = tasks.pop(seq)
        request = requests.pop(seq)
        try:
            arrived = task.result().take()
        except EattestError as exc:
            raise self._error(request, exc) from exc
        for gone in arrived.received.obsolete:
            obsolete = tasks.pop(gone.seq, None)
            requests.pop(gone.seq, None)
            if obsolete is not None:
                if obsolete.done():
                    _drop(obsolete)
                else:
                    obsolete.cancel()
                    dying.add(obsolete)
        ready[seq] = arrived
        self._note_drift()
        return len(arrived.items)

    def _deliverable(self, ready: dict[int, _Arrived[T]], running: Iterable[int]) -> int | None:
        """The answer to hand over next: in page order, none while a page before is unread."""
        if not ready:
            return None
        if self.order == "completed":
            return min(ready)
        plan = self._plan
        # Unread positions, and those read by a task still structuring its page.
        frontier = min([plan.frontier(), *(span[0] for span in map(plan.span_of, running) if span)])

        def position(arrived: _Arrived[T]) -> int:
            span = arrived.received.span
            return span[0] if span is not None else arrived.request.start

        candidates = [
            (a.request.round, position(a), seq)
            for seq, a in ready.items()
            if not a.items or position(a) < frontier or a.request.round < plan.rounds
        ]
        return min(candidates)[2] if candidates else None

    def _note_drift(self) -> None:
        plan = self._plan
        if plan.drift_events and not self._warned_drift:
            self._warned_drift = True
            logger.warning(
                "%s changed during the scan (%s -> %s items): re-planning and "
                "re-reading the affected pages",
                self._operation,
                plan.initial_total,
                plan.total,
            )
