"""The pure plan of a scan: which pages to ask for, what each answer means, when it ends.

No asyncio, no I/O: the driver (``_pagination.Scan``) asks :meth:`ScanPlan.issue` for
requests, hands each answer to :meth:`ScanPlan.receive`, and tells
:meth:`ScanPlan.handed_over` when the consumer has a page's items. Everything a server may
get wrong is decided here, and tested from fabricated answers (``tests/test_scanplan.py``).

Positions, not pages. The plan keeps what it has read as ranges of positions in the
listing ``[start, stop)``, each tagged with the total announced when it was read. A page
is ``[page * size, page * size + count)`` with the size the *server* used (announced, or
inferred from a short page), so a server that caps the page size re-plans the rest
instead of losing it, and a checkpoint survives a change of page size.

What a server may do, and what the plan does:

- content not a list (null, an object): an error of that page; asked again
  (``bad_page_attempts``), then the scan fails (:attr:`Received.error`).
- a page smaller than asked, in the middle: the server's size, announced or inferred,
  becomes the plan's; the positions are re-planned with it. Only a page holding items
  tells a size (an empty one tells an end), so the size the plan divides by is never 0.
- answers for another page than asked, short pages with a stated size, empty pages
  before the announced end, the same items again: each range is asked again once, then
  given up and reported (``contradictions``); nothing loops.
- a page holding more items than the total allows (a total that lags, a page past the
  end holding items): the plan reads on past the total, up to a short or empty page, and
  reports the contradiction; the scan is not complete (so a sync gives no watermark).
- no total and no size: a short page is the end only when its size is one the server has
  filled in this run; otherwise it may be a cap not said, and its items cannot be placed:
  asked again at its size. An empty page of such a size only bounds the end.
- the total moves (items inserted or deleted meanwhile): ranges read under another total
  are read again (``repair_rounds``), the duplicates dropped by id.
- a hard bound of pages per scan (``budget``), relative to the plan: a total that keeps
  growing, or anything else, ends the scan with an honest report.
- an absurd total (1e18): pages are planned lazily from ranges; nothing is allocated in
  proportion to any number the server sends.
- a resume (``resume_from=``): the checkpoint's positions are not asked again, and the
  items read at them (a page straddling them, pages of a size the server caps) are
  dropped, since delivered before. If the total is not the checkpoint's, they may hold
  other items now: read again and delivered rather than lost, and said in the report.

At the end, the report compares what was read with the last announced total:
``complete`` only when every position of ``[0, total)`` was read under that total, with
distinct ids, and nothing was given up; otherwise ``problems`` says why.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Any

import attrs

from ._validation import check_page_size
from .models.scans import Checkpoint

__all__ = ["IdSet", "PageAnswer", "PageRequest", "Received", "ScanPlan", "Spans"]

BAD_PAGE_ATTEMPTS = 3  # a page whose content is not a list: asked this many times at most
RANGE_ATTEMPTS = 2  # a range the server contradicts itself about: asked this many times
REPAIR_ROUNDS = 2  # re-reads of what was read under another total
_BLOCK_BITS = 12  # IdSet: 4096 ids per block
_DENSE_AT = 48  # ids in a block before it becomes a 512-byte bitmap


class IdSet:
    """Ids already delivered, compact: dense integer ids take about a bit each.

    Integer ids live in blocks of 4096: a block holding more than a few dozen ids becomes
    a 512-byte bitmap; sparse ones stay in a plain set. Other keys go to a set.
    """

    __slots__ = ("_blocks", "_counts", "_sparse", "size")

    def __init__(self) -> None:
        self._blocks: dict[int, bytearray] = {}
        self._counts: dict[int, int] = {}
        self._sparse: set[Hashable] = set()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __contains__(self, key: Hashable) -> bool:
        if type(key) is int and key >= 0:
            block = self._blocks.get(key >> _BLOCK_BITS)
            if block is not None:
                low = key & ((1 << _BLOCK_BITS) - 1)
                return bool(block[low >> 3] & (1 << (low & 7)))
        return key in self._sparse

    def add(self, key: Hashable) -> bool:
        """Add ``key``; True if it was not there."""
        if type(key) is int and key >= 0:
            high = key >> _BLOCK_BITS
            block = self._blocks.get(high)
            if block is not None:
                low = key & ((1 << _BLOCK_BITS) - 1)
                bit = 1 << (low & 7)
                if block[low >> 3] & bit:
                    return False
                block[low >> 3] |= bit
                self.size += 1
                return True
            if key in self._sparse:
                return False
            self._sparse.add(key)
            self.size += 1
            count = self._counts.get(high, 0) + 1
            if count >= _DENSE_AT:
                self._densify(high)
            else:
                self._counts[high] = count
            return True
        if key in self._sparse:
            return False
        self._sparse.add(key)
        self.size += 1
        return True

    def add_all(self, keys: Iterable[Hashable]) -> list[bool]:
        """``add`` of each key in turn (a page of them at once): True for those that were
        not there. Integer ids in a dense block are added here, without a call each."""
        out: list[bool] = []
        append = out.append
        blocks = self._blocks
        added = 0
        for key in keys:
            if type(key) is int and key >= 0:
                block = blocks.get(key >> _BLOCK_BITS)
                if block is not None:
                    low = key & ((1 << _BLOCK_BITS) - 1)
                    bit = 1 << (low & 7)
                    if block[low >> 3] & bit:
                        append(False)
                    else:
                        block[low >> 3] |= bit
                        added += 1
                        append(True)
                    continue
            append(self.add(key))
        self.size += added
        return out

    def discard(self, key: Hashable) -> None:
        if key not in self:
            return
        self.size -= 1
        if type(key) is int and key >= 0:
            block = self._blocks.get(key >> _BLOCK_BITS)
            if block is not None:
                low = key & ((1 << _BLOCK_BITS) - 1)
                block[low >> 3] &= ~(1 << (low & 7)) & 0xFF
                return
        self._sparse.discard(key)

    def _densify(self, high: int) -> None:
        self._counts.pop(high, None)
        block = bytearray(1 << (_BLOCK_BITS - 3))
        base = high << _BLOCK_BITS
        for low in range(1 << _BLOCK_BITS):
            if base + low in self._sparse:
                self._sparse.discard(base + low)
                block[low >> 3] |= 1 << (low & 7)
        self._blocks[high] = block


def _start(span: tuple[int, int, Any]) -> int:
    return span[0]


def _stop(span: tuple[int, int, Any]) -> int:
    return span[1]


class Spans:
    """Disjoint sorted ranges ``[start, stop)`` of positions, each with a tag (touching
    spans of one tag merged).

    A checkpoint may bring 100,000 ranges and every page covers one more: spans are found
    by bisection, so covering a range costs O(log n + k) comparisons for the k spans it
    touches (and a move of the list's tail, a memmove), and the length covered per tag is
    kept as it changes. Nothing done per page or per item walks the whole list.
    """

    __slots__ = ("_lengths", "items")

    def __init__(self) -> None:
        self.items: list[tuple[int, int, Any]] = []
        self._lengths: dict[Any, int] = {}  # positions covered, per tag

    @classmethod
    def of(cls, ranges: Iterable[tuple[int, int]], tag: Any = None) -> Spans:
        """``ranges`` (in any order, overlapping or not) covered with ``tag``: one sort,
        one pass (a checkpoint's are sorted already: the sort is then linear)."""
        spans = cls()
        spans._load((a, b, tag) for a, b in sorted(ranges))
        return spans

    def _load(self, items: Iterable[tuple[int, int, Any]]) -> None:
        """Replace the spans with sorted ``items`` (overlaps of one tag merged)."""
        merged: list[tuple[int, int, Any]] = []
        lengths: dict[Any, int] = {}
        for a, b, t in items:
            if a >= b:
                continue
            if merged and a <= merged[-1][1] and merged[-1][2] == t:
                a0, b0, _ = merged.pop()
                lengths[t] -= b0 - a0
                a, b = a0, max(b, b0)
            merged.append((a, b, t))
            lengths[t] = lengths.get(t, 0) + b - a
        self.items = merged
        self._lengths = {t: n for t, n in lengths.items() if n}

    def _count(self, tag: Any, length: int) -> None:
        left = self._lengths.get(tag, 0) + length
        if left:
            self._lengths[tag] = left
        else:
            self._lengths.pop(tag, None)

    def add(self, start: int, stop: int, tag: Any = None) -> None:
        """Cover ``[start, stop)`` with ``tag`` (replacing what was there)."""
        if start >= stop:
            return
        items = self.items
        # The spans overlapping or touching [start, stop]: only the first may begin before
        # it, only the last may end after it.
        lo = bisect.bisect_left(items, start, key=_stop)
        hi = bisect.bisect_right(items, stop, lo=lo, key=_start)
        new: list[tuple[int, int, Any]] = []
        after: tuple[int, int, Any] | None = None
        first, last = start, stop
        for a, b, t in items[lo:hi]:
            self._count(t, a - b)
        if lo < hi:
            a, b, t = items[lo]
            if a < start:
                if t == tag:
                    first = a
                else:
                    new.append((a, start, t))
            a, b, t = items[hi - 1]
            if b > stop:
                if t == tag:
                    last = b
                else:
                    after = (stop, b, t)
        new.append((first, last, tag))
        if after is not None:
            new.append(after)
        for a, b, t in new:
            self._count(t, b - a)
        items[lo:hi] = new

    def retag(self, old: Any, new: Any, where: Spans) -> None:
        """Tag ``new`` the parts tagged ``old`` that ``where`` covers: one pass over both."""
        cover = where.items
        out: list[tuple[int, int, Any]] = []
        j = 0
        for a, b, t in self.items:
            if t != old:
                out.append((a, b, t))
                continue
            while j < len(cover) and cover[j][1] <= a:
                j += 1
            position = a
            while j < len(cover) and cover[j][0] < b:
                low, high = max(cover[j][0], position), min(cover[j][1], b)
                if low > position:
                    out.append((position, low, t))
                out.append((low, high, new))
                position = high
                if cover[j][1] > b:
                    break  # it goes on over the next spans
                j += 1
            if position < b:
                out.append((position, b, t))
        self._load(out)

    def remove_where(self, keep: Any) -> list[tuple[int, int]]:
        """Drop the spans whose tag is not ``keep``; returns them."""
        dropped = [(a, b) for a, b, t in self.items if t != keep]
        self.items = [s for s in self.items if s[2] == keep]
        self._lengths = {keep: self._lengths[keep]} if keep in self._lengths else {}
        return dropped

    def _from(self, start: int) -> int:
        """The index of the first span ending after ``start``."""
        return bisect.bisect_right(self.items, start, key=_stop)

    def overlap(self, start: int, stop: int, tag: Any = ...) -> int:
        """How much of ``[start, stop)`` is covered (with ``tag``, when given)."""
        covered = 0
        for a, b, t in self.within(start, stop):
            if tag is ... or t == tag:
                covered += min(b, stop) - max(a, start)
        return covered

    def within(self, start: int, stop: int) -> Iterator[tuple[int, int, Any]]:
        """The spans overlapping ``[start, stop)``."""
        items = self.items
        for index in range(self._from(start), len(items)):
            if items[index][0] >= stop:
                break
            yield items[index]

    def length(self, tag: Any = ...) -> int:
        if tag is ...:
            return sum(self._lengths.values())
        return self._lengths.get(tag, 0)

    def tags(self) -> Iterable[Any]:
        """The tags of the spans (each once)."""
        return self._lengths.keys()

    def gaps(self, start: int, stop: int | None) -> Iterator[tuple[int, int | None]]:
        """The uncovered ranges within ``[start, stop)`` (``stop`` None: unbounded)."""
        items = self.items
        position = start
        for index in range(self._from(start), len(items)):
            a, b, _ = items[index]
            if stop is not None and a >= stop:
                break
            if a > position:
                yield position, a
            position = max(position, b)
        if stop is None:
            yield position, None
        elif position < stop:
            yield position, stop

    def ranges(self) -> tuple[tuple[int, int], ...]:
        out: list[tuple[int, int]] = []
        for a, b, _ in self.items:
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return tuple(out)


@attrs.frozen
class PageRequest:
    """One request to send: ``page`` of ``size`` items (``round`` 0, then the re-reads)."""

    seq: int
    page: int
    size: int
    round: int = 0

    @property
    def start(self) -> int:
        return self.page * self.size


@attrs.frozen(kw_only=True)
class PageAnswer:
    """What an answer said, as the driver read it from the envelope (nothing trusted)."""

    content_type: str  # "list" when content is a list, else the JSON type seen
    count: int = 0
    page: object = None
    size: object = None
    total: object = None


@attrs.frozen(kw_only=True)
class Received:
    """What an answer means: the items to deliver (indexes), or an error of the page."""

    fresh: tuple[int, ...] = ()
    error: str | None = None  # the page kept failing: the scan stops with this
    span: tuple[int, int] | None = None  # positions it covered
    obsolete: tuple[PageRequest, ...] = ()  # requests in flight not needed any more


def _count(value: object) -> int | None:
    """A count the server sent, if it is one (bools and negatives are not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


class ScanPlan:
    """The whole state of a scan, with no I/O; see the module docstring."""

    def __init__(
        self,
        *,
        operation: str,
        filters: tuple[tuple[str, str], ...],
        page_size: int,
        lookahead: int = 1,
        resume_from: Checkpoint | None = None,
    ) -> None:
        self.operation = operation
        self.filters = filters
        self.page_size = check_page_size(page_size)  # as asked by the caller
        # As the server uses it. Always >= 1, whatever the server says: pages, budgets and
        # positions are computed by dividing by it (only a page holding items sets it).
        self.size = page_size
        self.lookahead = max(1, lookahead)  # pages sent ahead while the end is unknown
        self.total: int | None = None
        self.initial_total: int | None = None
        self.end: int | None = None  # positions beyond it are not asked for
        self.hard_end: int | None = None  # where an empty page said the listing ends
        self.beyond = 0  # how far pages holding more than the total allows say to read
        # The largest page the server filled (or announced): a short page of a size up to
        # this can be the end; a larger size may be one it caps without saying so.
        self.filled = 0
        self.read = Spans()  # positions read, tagged with the total announced then
        self.delivered = Spans()  # positions whose items the consumer has
        self.given_up = Spans()  # positions the server kept contradicting itself about
        self.covered = Spans()  # read or given up, untagged: where the gaps and frontier are
        # The checkpoint's positions: their items were delivered before, never again while
        # the total is the checkpoint's (None: bound to the first one announced).
        self.resumed = Spans()
        self.resumed_total: int | None = None
        self.resume_moved: tuple[int, int] | None = None  # (its total, a total since)
        self.resumed_dropped = 0  # items dropped: the checkpoint counts their positions
        self.resumed_again = 0  # items delivered there once the positions moved
        self._in_flight: dict[int, PageRequest] = {}
        self._spans: dict[int, tuple[int, int]] = {}  # received, not yet handed over
        self._seq = 0
        self._attempts: dict[int, int] = {}  # per start position: answers that did not help
        self._bad: dict[int, int] = {}  # per start position: answers whose content was bad
        self.seen = IdSet()  # every id delivered
        self.view = IdSet()  # ids read under the current total: each at one position
        self.pages_fetched = 0
        self.pages_delivered = 0
        self.items = 0
        self.duplicates = 0
        self.unkeyed = 0  # items read without an id: exactly-once cannot be checked
        self.not_objects = 0  # of those, items that are not even JSON objects
        self.shrunk: tuple[int, int, int] | None = None  # (total, new total, ids read)
        self.bad_pages = 0
        self.drift_events = 0
        self.repaired_pages = 0
        self.rounds = 0
        self.size_changes = 0
        self.contradictions: dict[str, int] = {}
        self.budget: int | None = None
        self.exhausted = False
        self._budget_base = 0
        self.account: int | None = None  # named in checkpoints (set by the driver)
        self.environment: str | None = None
        if resume_from is not None:
            self.total = self.initial_total = self.resumed_total = resume_from.total_elements
            self.end = self.total
            # In one sort and one pass (a checkpoint may hold 100,000 ranges).
            self.resumed = Spans.of(resume_from.done)
            self.delivered = Spans.of(resume_from.done)
            self.read = Spans.of(resume_from.done, self.total)
            self.covered = Spans.of(resume_from.done)
            self._set_budget()

    # -- sending ------------------------------------------------------------------------

    def _set_end(self) -> None:
        """The end by the total, an empty page before it, and the items read past it."""
        if self.total is None:
            return
        end = self.total if self.hard_end is None else min(self.total, self.hard_end)
        self.end = max(end, self.beyond)

    def _resize(self, size: int) -> None:
        """The server's page size is ``size`` from now on (always >= 1)."""
        if size != self.size:
            self.size = size
            self.size_changes += 1
            self._set_budget()

    def _set_budget(self) -> None:
        """At most 4 x the pages the plan needs (re-reads after drift included), plus slack."""
        if self.end is None:
            return
        # What is not read within [0, end): what lies beyond it is usually nothing.
        missing = self.end - (self.read.length() - self.read.overlap(self.end, 2**63))
        pages = math.ceil(missing / self.size) + 2 * self.lookahead + 8
        self.budget = max(self.budget or 0, self.pages_fetched + 4 * pages)

    def _read(self, start: int, stop: int) -> None:
        self.read.add(start, stop, self.total)
        self.covered.add(start, stop)

    def _give_up(self, start: int, stop: int) -> None:
        self.given_up.add(start, stop, "x")
        self.covered.add(start, stop)

    def _unclaimed(self) -> Iterator[tuple[int, int | None]]:
        """Positions neither read, given up, nor asked for and not yet answered, in order,
        within the end. From the first gap on: only the few requests in flight are merged."""
        flying: list[tuple[int, int]] = []
        for a, b in sorted((r.start, r.start + r.size) for r in self._in_flight.values()):
            if flying and a <= flying[-1][1]:
                flying[-1] = (flying[-1][0], max(b, flying[-1][1]))
            else:
                flying.append((a, b))
        j = 0
        for gap, stop in self.covered.gaps(0, self.end):
            position = gap
            while j < len(flying) and flying[j][1] <= position:
                j += 1
            while j < len(flying) and (stop is None or flying[j][0] < stop):
                if flying[j][0] > position:
                    yield position, flying[j][0]
                position = flying[j][1]
                if stop is not None and position >= stop:
                    break  # that request goes on over the next gap
                j += 1
            else:
                yield position, stop

    def issue(self, limit: int, *, below: int | None = None) -> list[PageRequest]:
        """Up to ``limit`` new requests: the first pages of what is neither read nor asked
        (only those starting before position ``below``, when given)."""
        if limit <= 0 or self.exhausted:
            return []
        if self.budget is not None and self.pages_fetched + len(self._in_flight) >= self.budget:
            if not self._in_flight:
                self.exhausted = True
            return []
        requests: list[PageRequest] = []
        if self.end is None:
            # The end is unknown: walk on, ``lookahead`` pages ahead of the first gap.
            limit = min(limit, self.lookahead - len(self._in_flight))
        size = self.size
        for a, b in self._unclaimed():
            if below is not None and a >= below:
                break  # and so are all the gaps after it
            page = a // size
            if requests and requests[-1].page >= page:
                page = requests[-1].page + 1  # two gaps in one page: asked once
            while len(requests) < limit:
                if (b is not None and page * size >= b) or (
                    below is not None and max(a, page * size) >= below
                ):
                    break
                request = PageRequest(self._seq, page, size, self.rounds)
                self._seq += 1
                self._in_flight[request.seq] = request
                requests.append(request)
                page += 1
            if len(requests) >= limit:
                break
        if self.budget is not None:
            room = self.budget - self.pages_fetched - (len(self._in_flight) - len(requests))
            for request in requests[max(0, room) :]:
                del self._in_flight[request.seq]
            requests = requests[: max(0, room)]
        return requests

    def span_of(self, seq: int) -> tuple[int, int] | None:
        """The positions request ``seq`` read, once answered and until handed over."""
        return self._spans.get(seq)

    def frontier(self) -> int:
        """The first position neither read nor given up: page order delivers up to it."""
        first = self.covered.items[:1]
        return first[0][1] if first and first[0][0] == 0 else 0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def done(self) -> bool:
        """Nothing in flight and nothing left to ask; may start a repair round instead."""
        if self._in_flight:
            return False
        if self.exhausted:
            return True
        if self.budget is not None and self.pages_fetched >= self.budget:
            self.exhausted = True
            return True
        if self.end is None:
            return False
        if next(self.covered.gaps(0, self.end), None) is not None:
            return False
        if self._stale() and self.rounds < REPAIR_ROUNDS:
            # Positions may have shifted under pages read before the last change: read
            # them again; the ids already delivered are dropped.
            self.rounds += 1
            for a, b in self.read.remove_where(self.total):
                self.repaired_pages += math.ceil((b - a) / self.size)
            # Sorted already, both: the sort merges two runs.
            self.covered = Spans.of(
                [*((a, b) for a, b, _ in self.read.items), *self.given_up.ranges()]
            )
            self._set_budget()
            return False
        return True

    def _stale(self) -> bool:
        """Are there positions read under another total than the last?"""
        return any(tag != self.total for tag in self.read.tags())

    # -- receiving ----------------------------------------------------------------------

    def _contradiction(self, what: str) -> None:
        self.contradictions[what] = self.contradictions.get(what, 0) + 1

    def _retry_or_give_up(self, start: int, stop: int, what: str) -> None:
        """A range the answer did not cover: asked again once, then given up."""
        self._contradiction(what)
        attempts = self._attempts.get(start, 0) + 1
        self._attempts[start] = attempts
        if attempts >= RANGE_ATTEMPTS:
            self._give_up(start, stop)

    def receive(
        self, request: PageRequest, answer: PageAnswer, keys: Sequence[Hashable | None]
    ) -> Received:
        """What the answer to ``request`` means; ``keys`` are its items' ids (None: no id)."""
        if self._in_flight.pop(request.seq, None) is None:
            return Received()  # cancelled as obsolete, answered anyway: ignored
        self.pages_fetched += 1
        if answer.content_type != "list":
            self.bad_pages += 1
            bad = self._bad.get(request.start, 0) + 1
            self._bad[request.start] = bad
            if bad >= BAD_PAGE_ATTEMPTS:
                return Received(
                    error=f"page {request.page}: content is {answer.content_type}, not a list "
                    f"({bad} answers)"
                )
            return Received()  # its positions stay unread: asked again
        count = len(keys)
        total = _count(answer.total)
        if total is not None and total > 2**62:
            total = None
            self._contradiction("absurd totalElements")
        self._note_total(total)
        # The size the server used: announced, or inferred from a short page.
        page = request.page
        declared = _count(answer.size) or None
        if declared is not None and declared >= count:
            size = declared
            self.filled = max(self.filled, declared)
        else:
            size = request.size if count <= request.size else count
            if count < size and self.total is None and size > self.filled:
                # Short, of a size the server never filled in this run: capped without
                # saying so, or the end; nothing tells which. Page 0 starts at 0 either
                # way; another page's items cannot be placed: asked again at their size.
                if count and page:
                    self.filled = max(self.filled, count)
                    self._resize(min(self.size, count))
                    return Received()
                if count:
                    size = count  # the cap, or the end: the next page tells
                # Empty: its start bounds the end (the server's size is at most the asked).
            elif count < size and self.total is not None:
                if count <= self.size < request.size:
                    size = self.size  # the cap already learnt from another page
                elif not count:
                    pass  # an empty page tells the end (or a hiccup), never a size
                elif count < self._expected(page, size):
                    size = count  # capped without saying so: its size, from now on
            self.filled = max(self.filled, count)
        if not (self.total is None and declared is None and size < self.size <= self.filled):
            # (else: a page asked before the plan learnt the server fills larger ones; the
            # plan keeps asking for those)
            self._resize(size)
        answered = _count(answer.page)
        if answered is not None and answered != page:
            self._retry_or_give_up(
                page * size, (page + 1) * size, "answered another page than asked"
            )
            # Where its items are is not known: dropped by id only, never by position.
            return Received(fresh=self._dedupe(keys, None, view=False)[0])
        start = page * size
        stop = start + count
        expected = self._expected(page, size)
        obsolete: tuple[PageRequest, ...] = ()
        if count and self.hard_end == start + size and self.total is not None:
            self.hard_end = None  # the empty page was a hiccup: the plan goes on
            self._set_end()
        if self.total is not None and count > expected:
            # More than the total allows: a total that lags (a sync's newest changes
            # first), or a server that contradicts itself. Read on past it, never taken
            # as complete: a full page there says the listing may go on, a short one ends it.
            self._contradiction("a page held more items than the total allows")
            self.beyond = max(self.beyond, stop + size) if count >= size else stop
            self._set_end()
            self._set_budget()
        elif self.total is not None and count < size and self.total <= stop < self.beyond:
            self.beyond = stop  # read on past the total, up to this short (or empty) page
            self._set_end()
        if count < expected and self.total is not None:
            if count == 0:
                # Empty before the announced end: asked again once, nothing beyond it
                # meanwhile; then the listing is taken to end here.
                self._contradiction("empty page before the announced end")
                attempts = self._attempts.get(start, 0) + 1
                self._attempts[start] = attempts
                if attempts >= RANGE_ATTEMPTS:
                    self._give_up(start, max(self.total, start + 1))
                    self.hard_end = start
                else:
                    self.hard_end = min(self.hard_end or start + size, start + size)
                self._set_end()
            else:
                self._retry_or_give_up(stop, start + expected, "short page before the end")
        if self.total is None and count < size:
            # No total: a short page of the server's size is the last one (an empty page
            # of a size it may cap only bounds the end: the last short page may be before).
            self.end = stop if self.end is None else min(self.end, stop)
            self._set_budget()
        if self.end is not None:
            obsolete = tuple(r for r in self._in_flight.values() if r.start >= self.end)
            for r in obsolete:
                del self._in_flight[r.seq]
        fresh, repeats, new, again = self._dedupe(keys, start)
        # Ids read under this total at other positions: this page is not what it claims
        # (a stale cache, a server ignoring ``page=``, a shift the total did not show).
        repeats = max(0, repeats - self.read.overlap(start, stop, self.total))
        if count and not fresh and again > self.read.overlap(start, stop) and self.total is None:
            # Without a total, a page of items already delivered, not only at positions
            # read before (a page straddling them): the server repeats itself (it ignores
            # ``page=``?); walking on would never end.
            self._contradiction("a page repeated items already delivered")
            self.end = start
            obsolete += tuple(self._in_flight.values())
            self._in_flight.clear()
        elif repeats:
            self._retry_or_give_up(start, stop, "a page held items of another page")
            for key in new:  # its positions are read again: their ids are not placed yet
                self.view.discard(key)
            return Received(fresh=fresh, obsolete=obsolete)
        self._read(start, stop)
        self._spans[request.seq] = (start, stop)
        return Received(fresh=fresh, span=(start, stop), obsolete=obsolete)

    def _expected(self, page: int, size: int) -> int:
        """Items page ``page`` should hold by the total (``size`` when unknown)."""
        if self.total is None:
            return size
        return max(0, min(size, self.total - page * size))

    def _note_total(self, total: int | None) -> None:
        if total is None:
            return
        if self.initial_total is None:
            self.initial_total = total
        if self.resumed.items and self.resume_moved is None:
            if self.resumed_total is None:
                # The checkpoint knew no total: nothing says this one differs from it.
                self.resumed_total = total
                self.read.retag(None, total, self.resumed)
            elif total != self.resumed_total:
                # Items inserted or deleted since: the checkpoint's positions may hold
                # other items now. Delivered again rather than lost, and said.
                self.resume_moved = (self.resumed_total, total)
        if self.total is not None and total != self.total:
            self.drift_events += 1
            self.view = IdSet()
            read = len(self.seen) + self.unkeyed
            if total < read and self.shrunk is None:
                # Fewer than were already read: deletions, or a server that contradicts
                # itself; the scan cannot tell which, so it claims nothing.
                self.shrunk = (self.total, total, read)
        first = self.total is None
        self.total = total
        self._set_end()
        if first or self.budget is None:
            self._set_budget()

    def _dedupe(
        self, keys: Sequence[Hashable | None], start: int | None, *, view: bool = True
    ) -> tuple[tuple[int, ...], int, list[Hashable], int]:
        """Indexes of the items to deliver (ids never delivered, at positions the
        checkpoint does not count, ``start`` being the first's); ids this total saw
        already; ids new to it; ids delivered already."""
        done = self._resumed_in(start, len(keys))
        moved = self.resume_moved is not None
        fresh: list[int] = []
        add, in_view = self.seen.add, self.view.add
        repeats = again = 0
        new: list[Hashable] = []
        if done is None and None not in keys:
            # Every item with an id, none at a position the checkpoint counts (every page
            # but a resume's first ones): what the loop below does, a set at a time.
            if view:
                placed = self.view.add_all(keys)
                new = [key for key, first in zip(keys, placed, strict=True) if first]
                repeats = len(keys) - len(new)
            delivered = self.seen.add_all(keys)
            fresh = [index for index, first in enumerate(delivered) if first]
            again = len(keys) - len(fresh)
            self.duplicates += again
            return tuple(fresh), repeats, new, again
        for index, key in enumerate(keys):
            resumed = done is not None and done[index]
            if resumed and not moved:
                # Delivered before the resume. Placed in this total's view (a page of
                # them again elsewhere is a contradiction), not among the ids delivered:
                # if the positions moved unseen, an item comes twice, never is lost.
                self.resumed_dropped += 1
                if view and key is not None and in_view(key):
                    new.append(key)
                continue
            if key is None:
                self.unkeyed += 1
                fresh.append(index)
            else:
                if view:
                    if in_view(key):
                        new.append(key)
                    else:
                        repeats += 1
                if add(key):
                    fresh.append(index)
                else:
                    again += 1
                    continue
            if resumed:
                self.resumed_again += 1
        self.duplicates += len(keys) - len(fresh)
        return tuple(fresh), repeats, new, again

    def _resumed_in(self, start: int | None, count: int) -> bytearray | None:
        """Which of ``count`` items from position ``start`` the checkpoint counts as
        delivered (None: none, or ``start`` unknown)."""
        if start is None or not count or not self.resumed.items:
            return None
        done: bytearray | None = None
        for a, b, _ in self.resumed.within(start, start + count):
            a, b = max(a, start) - start, min(b, start + count) - start
            if done is None:
                done = bytearray(count)
            done[a:b] = b"\x01" * (b - a)
        return done

    def handed_over(self, request: PageRequest, items: int) -> None:
        """The consumer has the ``items`` delivered from ``request``'s page."""
        span = self._spans.pop(request.seq, None)
        if span is not None:
            self.delivered.add(span[0], span[1], None)
        self.pages_delivered += 1
        self.items += items

    # -- telling ------------------------------------------------------------------------

    @property
    def pages_total(self) -> int | None:
        if self.total is None:
            return None
        return max(1, math.ceil(self.total / self.size))

    def checkpoint(self) -> Checkpoint:
        """The positions whose items the consumer has: ``resume_from=`` fetches the rest."""
        return Checkpoint(
            operation=self.operation,
            filters=self.filters,
            page_size=self.page_size,
            total_elements=self.total,
            done=self.delivered.ranges(),
            account=self.account,
            environment=self.environment,
        )

    @property
    def missing(self) -> int:
        """Items of the last announced total the scan did not see (0 when unknown)."""
        if self.total is None:
            return 0
        past = self.read.overlap(self.total, 2**63, self.total)  # read past it: not counted
        return max(0, self.total - self.read.length(self.total) + past)

    def complete(self) -> bool:
        """Done, and every item of the last announced total was delivered, once."""
        return not self.problems(finished=True)

    def problems(self, *, finished: bool) -> tuple[str, ...]:
        """Why the scan is not complete (empty when it is)."""
        out: list[str] = []
        if not finished:
            out.append("stopped before the end")
        if self.exhausted:
            out.append(
                f"stopped after {self.pages_fetched} pages, the bound for this plan "
                f"(the total went from {self.initial_total} to {self.total})"
            )
        for what, count in sorted(self.contradictions.items()):
            out.append(f"the server contradicted itself: {what} ({count}x)")
        gave_up = self.given_up.length()
        if gave_up and self.total is not None:
            out.append(f"positions given up: {min(gave_up, self.total)}")
        if self.drift_events and self._stale():
            out.append(
                f"the listing kept changing ({self.drift_events} changes of the total, "
                f"{self.initial_total} -> {self.total}): some pages were not read again"
            )
        if finished and self.total is not None:
            missing = self.missing
            if missing:
                out.append(
                    f"{missing} items missing: of the {self.total} the server announced "
                    f"last, {self.total - missing} were read under that total"
                )
        if finished and self.total is None and self.end is None:
            out.append("the end of the listing was never seen")
        if self.shrunk is not None:
            before, after, read = self.shrunk
            out.append(
                f"the total fell from {before} to {after}, below the {read} items already "
                "read: deleted meanwhile, or the server contradicted itself"
            )
        if self.resume_moved is not None and self.resumed_again:
            before, after = self.resume_moved
            out.append(
                f"the listing changed since the checkpoint (total {before} -> {after}): the "
                f"{self.resumed_again} items read at positions it counted as done were "
                "delivered, some perhaps delivered before the resume"
            )
        if self.unkeyed:
            odd = f" ({self.not_objects} not even objects)" if self.not_objects else ""
            out.append(
                f"{self.unkeyed} items read without an id{odd}: exactly-once could not be checked"
            )
        return tuple(out)
