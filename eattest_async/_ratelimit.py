"""RateGate: one per client, passed by every API request before it leaves.

The service bans an IP for 12 hours when a client keeps calling through 429s, so the rule
is absolute: once any response announces a ``Retry-After`` deadline, **no** request of
this client leaves before it, whichever task sends it. Beyond that, the gate paces: evenly
spaced requests at the rate the server allows (announced by ``RateLimit-*`` headers, or
learned from the 429s when there are none), so that the provider's limit is used to the
full and the 429 rarely happens at all. After a cooldown, waiters leave one slot apart,
never all at once (which also bounds a ``Retry-After: 0`` or a date in the past).

Interface used by the core (one ``acquire`` per attempt; then exactly one ``release`` when
an HTTP answer came, or one ``abandon`` when none did):

- ``await gate.acquire(deadline=...)`` waits for the request's turn, or raises
  :class:`RateLimitError` at once when that turn comes after ``deadline``;
- ``await gate.release(status=..., retry_after=..., info=...)``;
- ``gate.abandon()``.

Cross-process sharing goes through a :class:`GateStore` (state on wall-clock seconds);
:class:`LocalGateStore` keeps it in this process.
"""

from __future__ import annotations

import collections
import contextvars
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
import anyio.lowlevel
import attrs

from ._exceptions import RateLimitError
from ._protocol import MAX_WAIT, RateLimitInfo

__all__ = [
    "BudgetReport",
    "GateStore",
    "LocalGateStore",
    "RateGate",
    "RateSnapshot",
    "Reservation",
    "SharedLimit",
]


@attrs.frozen(kw_only=True)
class RateSnapshot:
    """What the gate did and knows, for progress lines, scan reports and the CLI."""

    requests: int  # requests released by the gate
    responses_429: int
    request_rate: float  # achieved requests/s over the active period
    limit: float | None  # requests/s: announced, learned or configured; None if unknown
    limit_source: str | None  # "announced" | "learned" | "configured" | None
    cooldowns: int
    waited: float  # seconds requests spent waiting in the gate


@attrs.frozen(kw_only=True)
class SharedLimit:
    """A limit known to the gate: ``requests`` per ``window`` seconds.

    ``source`` is "announced" (RateLimit headers) or "learned" (from 429s); ``updated`` is
    the wall-clock time it was established.
    """

    requests: float
    window: float
    source: str
    updated: float

    @property
    def rate(self) -> float:
        return self.requests / self.window


@attrs.frozen
class Reservation:
    """A slot reserved in a :class:`GateStore`: when the request may leave, and its number
    (the store's count of reservations, this one included: what a budget report names).
    ``kept`` is False when the slot came after the caller's ``latest``: nothing stored."""

    slot: float
    number: int
    kept: bool = True


@attrs.frozen(kw_only=True)
class BudgetReport:
    """The server's word on its current window, as a store keeps it for every gate."""

    number: int  # the latest reservation whose answer was reported in this window
    remaining: int  # the lowest remaining reported in this window
    end: float  # upper bound of the window's end (store time)
    opened: float  # when the window's first reported request was sent (store time)
    previous_end: float | None = None  # the window before: its end (upper bound, store time)


class GateStore(Protocol):
    """Where the pacing state lives: in this process, or shared between processes (Redis).

    All times are wall-clock seconds (``time.time()``), so that processes agree. Each method
    is one atomic step: implementations must never let two callers interleave inside one
    call (a Lua script, a transaction, or a lock), and nothing else is assumed atomic.
    """

    async def reserve(
        self,
        *,
        now: float,
        interval: float,
        not_before: float,
        latest: float | None = None,
        give_back: tuple[float, float, int] | None = None,
    ) -> Reservation:
        """One GCRA step: the time the caller's request may leave, reserved for it.

        ``slot = max(now, tat, deadline, not_before)`` where ``tat`` is the stored
        theoretical arrival time and ``deadline`` the stored cooldown deadline; when the
        reported budget (see :meth:`report`) is spent by the reservations made since, the
        slot is no earlier than the reported window's end. Then ``tat = slot + interval``
        is stored and the reservation counted. When ``latest`` is given and
        ``slot > latest``, nothing is stored or counted (the caller will not send) and the
        slot is returned all the same. ``interval`` is >= 0 (0: no pacing).

        A slot given back (see :meth:`give_back`) that is not past (``now``, the deadline)
        and not before ``not_before`` is taken first, when earlier than the slot above and
        not held by the reported budget: ``tat`` stays, the reservation is counted.

        ``give_back=(slot, tat, number)``: an earlier reservation of this caller, which it
        did not use (a hold came while it slept), first given back as :meth:`give_back`
        says, in the same atomic step. Without it every re-reservation would waste one
        interval.
        """
        ...

    async def give_back(self, slot: float, tat: float, number: int) -> None:
        """Reservation ``number`` (stored with ``slot`` and ``tat``) will not be used: its
        caller was cancelled, refused by its deadline, or failed before sending.

        When it is still the last one (the stored ``tat`` and count are the ones it
        stored), it is rolled back: ``tat = slot``, uncounted; so is each slot given back
        earlier that is the last one in turn. Otherwise (others reserved after it; moving
        their slots would reorder everyone) the slot is kept aside for :meth:`reserve` to
        hand out again. A burst of cancellations thus costs the next callers at most the
        wait for the first slot given back, under one interval; a slot given back that
        passes unused is lost, as time is. Its number stays counted: no two reservations
        ever share a number (the budget holds one request early, at worst). Best effort:
        never raises for a store that cannot be reached.
        """
        ...

    async def report(
        self,
        *,
        number: int,
        remaining: int,
        limit: int | None,
        sent: float,
        end: float,
        answered: float | None = None,
    ) -> None:
        """The answer to reservation ``number`` (sent at ``sent``, answered at ``answered``)
        said ``remaining`` requests are left in a window that ends by ``end``: merged into
        the stored report as :func:`merge_report` says (within a window, the highest number,
        the lowest remaining and the earliest end stand; an earlier window's answer, come
        late, changes nothing)."""
        ...

    async def holds(self, *, number: int, now: float) -> tuple[float, float]:
        """What holds reservation ``number`` at ``now``: (the cooldown deadline in force, 0.0
        when none was ever set; the end of a window whose reported budget it exceeds, or
        0.0). Number 0 reads the deadline alone."""
        ...

    @property
    def shares_budget(self) -> bool:
        """Whether :meth:`reserve` now holds on the budget every gate reports (a shared store
        that can be reached): the gate then does not hold on its own count of it."""
        ...

    async def extend_deadline(self, until: float) -> float:
        """Nothing may leave before ``until``: store ``max(deadline, until)``, never shorter.

        Returns the deadline now in force.
        """
        ...


FREED_MAX = 1000  # slots given back kept aside by a store, at most (each one's wait, lost)


def merge_report(
    report: BudgetReport | None,
    *,
    number: int,
    remaining: int,
    limit: int | None,
    sent: float,
    end: float,
    answered: float | None = None,
) -> BudgetReport:
    """The store's report once the answer to reservation ``number`` (sent at ``sent``,
    answered at ``answered``) said ``remaining`` in a window that ends by ``end`` (the rule
    the Redis script repeats).

    Processes send in nearly, not exactly, the order of their reservations, and the
    server counts arrivals: within a window, the lowest remaining reported is the count
    after all the reported requests arrived, so it holds from the highest number reported
    on, in whatever order the answers come. A later reservation's answer starts a new
    window when the window is over (sent after its end), when it is the window's first
    (``limit - 1``), or when it rises past half the limit above what the window had left;
    a window whose start was missed is caught by the first request sent after its end.
    An answer that reports less than the window has left, to a request sent before the
    previous window's end, arrived in that window: it changes nothing (taken as this
    window's, it would hold every process until this window's end). That end is bounded by
    the stored end and by the answer that showed the new window (its request arrived
    after the previous window ended)."""
    if report is None:
        return BudgetReport(number=number, remaining=remaining, end=end, opened=sent)
    if number < report.number:  # an earlier reservation's answer, come late
        if max(report.opened, report.previous_end or report.opened) <= sent < report.end:
            return attrs.evolve(report, remaining=min(report.remaining, remaining))
        return report
    left = max(0, report.number + report.remaining - number)  # left at this number
    if limit is None:
        rise = remaining > left
    else:
        rise = remaining == limit - 1 or remaining - left > limit / 2
    if sent >= report.end or rise:
        previous_end = report.end if answered is None else min(report.end, answered)
        return BudgetReport(
            number=number, remaining=remaining, end=end, opened=sent, previous_end=previous_end
        )
    if report.previous_end is not None and sent < report.previous_end and remaining < left:
        return report
    return BudgetReport(
        number=number,
        remaining=min(report.remaining, remaining),
        end=min(report.end, end),
        opened=report.opened,
        previous_end=report.previous_end,
    )


def window_hold(report: BudgetReport | None, *, number: int, at: float) -> float:
    """The reported window's end when reservation ``number`` is beyond its budget and ``at``
    is before that end; else 0.0 (the rule the Redis script repeats)."""
    if report is None or at >= report.end or number <= report.number + report.remaining:
        return 0.0
    return report.end


class LocalGateStore:
    """:class:`GateStore` in this process (the default): plain attributes, no awaiting
    inside a call, so every call is atomic on the event loop. Its times are the gate's own
    clock (monotonic), not wall-clock seconds: nothing is shared, so nothing steps."""

    def __init__(self) -> None:
        self._tat = 0.0
        self._deadline = 0.0
        self._count = 0
        self._report: BudgetReport | None = None
        # Slots given back while others were reserved after them: number -> (slot, tat).
        self._freed: dict[int, tuple[float, float]] = {}

    async def reserve(
        self,
        *,
        now: float,
        interval: float,
        not_before: float,
        latest: float | None = None,
        give_back: tuple[float, float, int] | None = None,
    ) -> Reservation:
        if give_back is not None:
            self._give_back(*give_back)
        number = self._count + 1
        slot = max(now, self._tat, self._deadline, not_before)
        slot = max(slot, window_hold(self._report, number=number, at=slot))
        reused = self._reusable(now=now, not_before=not_before, number=number, before=slot)
        if reused is not None:
            slot = self._freed[reused][0]
        if latest is not None and slot > latest:
            return Reservation(slot, number, kept=False)
        if reused is not None:
            del self._freed[reused]  # its place in the schedule: tat stays
        else:
            self._tat = slot + max(0.0, interval)
        self._count = number
        return Reservation(slot, number)

    def _reusable(self, *, now: float, not_before: float, number: int, before: float) -> int | None:
        """The number of the earliest slot given back that reservation ``number`` may take
        instead of ``before``; drops those no one can use any more (past, or in a cooldown)."""
        if not self._freed:
            return None
        usable = max(now, self._deadline)
        self._freed = {n: entry for n, entry in self._freed.items() if entry[0] >= usable}
        # The earliest from not_before on, or none: the rule of the Lua script, one lookup.
        candidates = [(slot, n) for n, (slot, _) in self._freed.items() if slot >= not_before]
        if not candidates:
            return None
        slot, found = min(candidates)
        if slot < before and window_hold(self._report, number=number, at=slot) == 0.0:
            return found
        return None

    async def give_back(self, slot: float, tat: float, number: int) -> None:
        self._give_back(slot, tat, number)

    def _give_back(self, slot: float, tat: float, number: int) -> None:
        if (self._tat, self._count) != (tat, number):
            if len(self._freed) < FREED_MAX:  # beyond: those slots are lost, not the order
                self._freed[number] = (slot, tat)
            return
        self._tat, self._count = slot, number - 1
        # Slots given back earlier that are now the last in turn.
        while (entry := self._freed.get(self._count)) is not None and entry[1] == self._tat:
            del self._freed[self._count]
            self._tat, self._count = entry[0], self._count - 1

    async def report(
        self,
        *,
        number: int,
        remaining: int,
        limit: int | None,
        sent: float,
        end: float,
        answered: float | None = None,
    ) -> None:
        self._report = merge_report(
            self._report,
            number=number,
            remaining=remaining,
            limit=limit,
            sent=sent,
            end=end,
            answered=answered,
        )

    async def holds(self, *, number: int, now: float) -> tuple[float, float]:
        return self._deadline, window_hold(self._report, number=number, at=now)

    @property
    def shares_budget(self) -> bool:
        return False  # one process: its gate's own count is the whole budget

    async def extend_deadline(self, until: float) -> float:
        self._deadline = max(self._deadline, until)
        return self._deadline


@attrs.frozen
class _Ticket:
    """What release() needs to know of its acquire: this gate's sequence number, when, and
    the store's number of its reservation."""

    gate: RateGate
    seq: int
    sent: float
    number: int


# acquire() and release()/abandon() of one attempt run in the same task, hence the same
# context: the ticket travels between them without changing the core's calls.
_TICKET: contextvars.ContextVar[_Ticket | None] = contextvars.ContextVar(
    "eattest_rate_ticket", default=None
)

ANNOUNCED_FRACTION = 0.98  # of an announced limit: margin for arrival jitter only
LEARNED_FRACTION = 0.97  # of a learned limit, right after learning it...
LEARNED_FRACTION_MAX = 0.98  # ...raised step by step, one step per window without a 429
FRACTION_STEP = 0.01
# A learned count can be far below the limit (a token bucket's burst and refill read as
# fixed windows: 22 per second where 60 are allowed), so a calm gate probes upward in
# cycles: PROBE_EVERY windows at the top fraction without a 429, then 1 % more, and while
# each probe holds a full window without a 429, the next one a window later with twice the
# step (at most PROBE_STEP_MAX): from 22 to 60 in some ten windows, where +1 % per ten
# windows took minutes. The 429 that ends a cycle goes back to the last count that held.
PROBE_EVERY = 10
PROBE_STEP = 0.01
PROBE_STEP_MAX = 0.25  # a fifth over the limit at worst: the 429 comes within the window
# A cycle that did not raise the count held by PROBE_GAIN (a limit learned exactly: fixed
# windows) waits twice as long before the next one, up to PROBE_EVERY_MAX windows: one 429
# event per cycle, ever rarer; a cycle that did resets the wait (there may be more to gain).
PROBE_GAIN = 0.05
PROBE_EVERY_MAX = 80
PACE_USED = 0.75  # of the pace sent in a calm window, at least, for it to count as held
BACKOFF = 0.7  # a 429 that says nothing of when: multiply the pace (AWS adaptive's beta)
FIRST_ANSWER_WAIT = 1.0  # seconds the others wait for the first answer, at most
# While nothing is known of the limit (no RateLimit headers, no 429 yet, no max_rate), the
# requests in flight are RAMP_START for the first RAMP_HOLD seconds, then grow by
# RAMP_GROWTH every RAMP_STEP seconds: when an unannounced limit is met, as many requests
# as are in flight meet a 429 with it (at 16 in flight: 16 429s, the pattern a ban is made
# of). Three for a whole second meets a limit of up to 3 per round trip within its first
# window of a second (sooner met, less of that window lost to the Retry-After that follows)
# for 3 429s; a server without a limit gets 16 in flight after 1.9 s, once per client.
RAMP_START = 3
RAMP_HOLD = 1.0
RAMP_STEP = 0.3
RAMP_GROWTH = 1.75
SENT_LOG_MAX = 10_000  # sends remembered: a learned limit above it per window is paced only
REPLAY_WINDOWS = (1, 2, 3, 4, 5, 6, 10, 15, 20, 30, 60)  # seconds: lengths a 429 is tried on
LATE_WAKE = 0.005  # seconds past its slot: the loop was busy when this request woke
MIN_WINDOW = 0.05  # seconds: bound of any window length inferred from timings


class RateGate:
    """Paces the requests of one client (or of every process sharing ``store``).

    - Nothing leaves before a ``Retry-After`` deadline (the store's, shared by every task).
    - Requests leave on evenly spaced slots (GCRA in the store): the interval is the tightest
      of ``max_rate``, the announced or learned limit (a fraction of it), and the budget
      left in the server's window spread over the time left in it.
    - With ``RateLimit-*`` headers the budget is exact: remaining as the server counted it,
      minus what left since; at 0 nothing leaves before the window's end (the earliest
      ``answer time + reset`` seen in that window, an upper bound of it).
    - Without headers, the first 429 teaches the limit: the requests answered since the
      window opened and, from ``Retry-After``, when it ends; the window length is taken
      as the whole number of seconds those bounds allow (servers count in seconds), else
      the upper bound. Later 429s refine it; windows without a 429 raise the pace slowly.
    - Until the first answer, one request alone: its headers tell the budget before any
      is spent.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
        max_rate: float | None = None,
        store: GateStore | None = None,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._max_rate = max_rate
        self._store: GateStore = store or LocalGateStore()
        # An in-process store keeps the gate's own clock: a step of the wall clock (NTP)
        # cannot move its deadlines. Only a shared store needs wall-clock times.
        self._local = isinstance(self._store, LocalGateStore)
        self._deadline = 0.0  # gate clock; mirror of the store's, for the sync properties
        self._deadline_to_share = 0.0  # set by the sync cool_down, shared at the next await
        self._seq = 0  # requests released so far (their sequence numbers)
        self._in_flight = 0
        self._waiting = 0  # acquires asleep until their reserved slot
        self._admitted = 0  # acquires past the slow start, not in flight yet
        # Send times within the last window's length (gate clock), for a learned limit.
        self._sent_log: collections.deque[tuple[int, float]] = collections.deque(
            maxlen=SENT_LOG_MAX
        )  # (seq, sent)
        self._answered = False
        self._first_answer = anyio.Event()
        self._answer_event = anyio.Event()  # set (and replaced) at every answer or abandon
        # A task is on its way to the first request: its reserve may await (a shared store).
        self._probing = False
        # What the server announced or what was learned: ``requests`` per ``window``.
        self._limit: SharedLimit | None = None
        self._fraction = ANNOUNCED_FRACTION
        self._calm_since = 0.0  # start of the current run of windows without a 429
        self._probes = 0  # calm windows at the top fraction since the last cycle or 429
        # Probing (see PROBE_EVERY): the learned count at the last calm window, and the
        # lower of it and the one before (None: none yet since it was learned or refused);
        # the count a cycle of probes started from (None: no cycle on), its current step,
        # the windows before the next cycle.
        self._held: float | None = None
        self._verified: float | None = None
        self._probe_base: float | None = None
        self._probe_step = PROBE_STEP
        self._probe_every = PROBE_EVERY
        # The server's current window, from RateLimit headers.
        self._report_seq: int | None = None  # the request whose answer set the budget
        self._report_remaining = 0
        self._window_end = 0.0  # upper bound (gate clock)
        self._window_opened = 0.0  # when the request that showed the window left
        self._window_opened_seq: int | None = None  # and its sequence number
        self._previous_end = -math.inf  # the window before it: its end (upper bound)
        self._remaining_peak = 0  # the most ever reported left (the limit, when unannounced)
        self._distrust_announced = False  # a 429 came with room in the announced budget
        self._budget_margin = 0  # requests each window stops short of the announced budget
        self._opener: tuple[float, float] | None = None  # (sent, answered) of its 1st request
        self._window_bound = math.inf  # upper bound of the window length, from openers
        # Learning without headers: the window we watch starts at our first request after
        # a deadline (or at our first request): (seq, sent, answered) of that request.
        self._watch: tuple[int, float, float | None] | None = None
        self._watch_from = 0.0  # gate clock: the next watch starts at a request sent after
        self._watch_ok = 0  # answered, not 429, since the watch started
        self._window_low = 0.0  # lower bound of the window length, from 429s
        # Sequence numbers [first, last) counted as served by the count last learned.
        self._counted: tuple[int, int] | None = None
        # Statistics.
        self._responses_429 = 0
        self._first = 0.0
        self._last = 0.0
        self.cooldowns = 0
        self.waited = 0.0

    # -- what the gate knows --------------------------------------------------------------

    @property
    def cooldown_remaining(self) -> float:
        return max(0.0, self._deadline - self._clock())

    def snapshot(self) -> RateSnapshot:
        active = self._last - self._first
        limit, source = self._binding_limit()
        return RateSnapshot(
            requests=self._seq,
            responses_429=self._responses_429,
            request_rate=(self._seq - 1) / active if self._seq > 1 and active > 0 else 0.0,
            limit=limit,
            limit_source=source,
            cooldowns=self.cooldowns,
            waited=self.waited,
        )

    def _binding_limit(self) -> tuple[float | None, str | None]:
        known = self._limit
        if known is not None and (self._max_rate is None or known.rate < self._max_rate):
            return known.rate, known.source
        if self._max_rate is not None:
            return self._max_rate, "configured"
        return None, None

    def _interval(self, now: float) -> float:
        """Seconds between two releases: the tightest of every rate known."""
        rates = []
        if self._max_rate is not None:
            rates.append(self._max_rate)
        if self._limit is not None:
            rates.append(self._fraction * self._limit.rate)
        budget = self._budget()
        if self._local and budget is not None and budget > 0 and now < self._window_end:
            # The budget spread over the time left (one more: the last may leave at the end,
            # and the end is an upper bound); the hold at 0 keeps it exact. (Not with a
            # shared store: a process that saw less of the window over-estimates its end,
            # and its long intervals would space every process's slots.)
            rates.append((budget + 1) / (self._window_end - now))
        return 1.0 / min(rates) if rates else 0.0

    def _budget(self) -> int | None:
        """Requests we may still send in the server's current window (None: unknown)."""
        if self._report_seq is None:
            return None
        return self._left_at(self._seq) - self._budget_margin

    def _left_at(self, seq: int) -> int:
        """What the last report leaves once request ``seq`` (and those before it) arrived,
        counting this process's sends; set only once a report came."""
        assert self._report_seq is not None
        return self._report_remaining - (seq - self._report_seq)

    def _hold(self, now: float, ahead: int = 0) -> float:
        """Gate-clock time before which the window's exhausted budget holds a request that
        has ``ahead`` others reserved before it (and not sent yet)."""
        if not self._local and self._store.shares_budget:
            # This process's budget counts only its own sends, its window end only the
            # answers it got (an over-estimate when another process saw the window open):
            # the shared store holds on the budget every process reports.
            return 0.0
        budget = self._budget()
        if budget is not None and budget <= ahead and now < self._window_end:
            return self._window_end
        return 0.0

    def _log_hold(self) -> float:
        """Gate-clock time before which the learned count of requests in any window's length
        is reached (0.0: not reached). Evenly spaced slots can still bunch on the way out
        (late wake-ups after the event loop was busy); the log of actual sends bounds every
        window, however the server aligns it."""
        known = self._limit
        if known is None or known.source != "learned":
            return 0.0
        cap = self._log_cap(known.requests)
        return self._sent_log[-cap][1] + known.window if len(self._sent_log) >= cap else 0.0

    # -- acquire ------------------------------------------------------------------------------

    async def acquire(self, *, deadline: float | None = None) -> None:
        """Wait for this request's slot, then count it as in flight.

        Raises :class:`RateLimitError` at once (without waiting) when the slot comes after
        ``deadline`` (gate clock); ``retry_after`` says how long until it would come.
        Cancellable at any point; a cancelled acquire counts nothing, and gives its
        reserved slot back to the store (as one refused or failed does).
        """
        called = self._clock()
        await self._share_deadline()
        if not self._answered and (self._in_flight > 0 or self._probing):
            # One request alone until the first answer: its headers tell the budget. A slow
            # first answer holds the others FIRST_ANSWER_WAIT at most.
            wait = FIRST_ANSWER_WAIT
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - called))
            await self._event_or(self._first_answer, wait)
        await self._ramp(deadline)
        self._admitted += 1  # past the slow start, not yet in flight: counted against it
        probe = not self._answered and not self._probing
        self._probing = self._probing or probe
        # (slot, tat, number) kept in the store and not used yet (store time): given back
        # on a re-reservation, or by whatever ends this acquire before the request leaves.
        held: tuple[float, float, int] | None = None
        number = 0
        try:
            while True:
                now = self._clock()
                offset = self._offset(now)  # store time = gate clock + offset
                interval = self._interval(now)
                # Shielded (a store call is bounded in time): cancelled half-way, a shared
                # store may have kept a reservation that nobody would then give back.
                with anyio.CancelScope(shield=True):
                    reservation = await self._store.reserve(
                        now=now + offset,
                        interval=interval,
                        # The budget left once those already waiting have left: when it is
                        # spent, this one's slot is in the next window, known now rather
                        # than found on waking (which would cost a re-reservation).
                        not_before=max(self._hold(now, self._waiting), self._deadline) + offset,
                        latest=None if deadline is None else deadline + offset,
                        give_back=held,
                    )
                reserved, number = reservation.slot, reservation.number
                held = None
                if reservation.kept:
                    held = (reserved, reserved + max(0.0, interval), number)
                slot = reserved - offset
                # A shared deadline or slot from a wall clock that stepped (here or in
                # another process) waits no longer than the longest wait we ever accept.
                slot = min(slot, now + MAX_WAIT)
                if not reservation.kept or (deadline is not None and slot > deadline):
                    raise self._too_late(slot - now)
                if slot > now:
                    self._waiting += 1
                    try:
                        await self._sleep(slot - now)
                    finally:
                        self._waiting -= 1
                # While it slept, a 429 may have set a deadline or an answer emptied the budget.
                # An answer can also be waiting, read but not yet processed, when the loop
                # was busy (a big page structured, a consumer's own work: this wake-up came
                # late): its task was woken in the same turn as this one. Two turns let it
                # run first (only then: each turn costs every task a pass of the loop).
                if slot > now and self._clock() - slot > LATE_WAKE:
                    await anyio.lowlevel.checkpoint()
                    await anyio.lowlevel.checkpoint()
                now = self._clock()
                if await self._turn_came(number, now):
                    # Its turn came: only the log of sends may still hold it, briefly, in
                    # its place in the queue (re-reserving would cost the slot).
                    hold = self._log_hold()
                    slept = False
                    while now < hold and now >= self._deadline:
                        if deadline is not None and hold > deadline:
                            raise self._too_late(hold - now)
                        await self._sleep(min(hold - now, MAX_WAIT))
                        slept = True
                        now = self._clock()
                        # Those the log held wake together: they leave an interval apart.
                        hold = max(self._log_hold(), self._sent_log[-1][1] + self._interval(now))
                    # While it slept, another process may have met a 429 or spent the
                    # budget: the store's word again before leaving.
                    if slept and not await self._turn_came(number, now):
                        continue  # reserved again, after what holds it
                    if now >= hold and now >= self._deadline:
                        break
            held = None  # used: the request leaves
        finally:
            try:
                if held is not None:
                    # Cancelled, refused or failed before leaving: the slot goes back, or
                    # every later request would wait behind it. Shielded, so that it runs
                    # in a cancelled task too (bounded: the store's calls are).
                    with anyio.CancelScope(shield=True):
                        await self._store.give_back(*held)
            finally:
                self._admitted -= 1
                if probe:
                    self._probing = False  # answered, abandoned, or in flight (counted) by now
        self._seq += 1
        self._in_flight += 1
        self._log_send(now)
        _TICKET.set(_Ticket(self, self._seq, now, number))
        if self._watch is None and now >= self._watch_from:
            self._watch, self._watch_ok = (self._seq, now, None), 0
        if self._seq == 1:
            self._first = now
        self._last = now
        self.waited += now - called

    async def _turn_came(self, number: int, now: float) -> bool:
        """Whether nothing holds reservation ``number`` at ``now``: the cooldown deadline
        (the store's, kept as this gate's too), the budget this gate counts, and a budget
        another process reported spent since it reserved."""
        offset = self._offset(now)
        shared, window = await self._store.holds(number=number, now=now + offset)
        shared = min(shared - offset, now + MAX_WAIT)
        if shared > self._deadline:
            self._deadline = shared
        return now >= self._deadline and now >= self._hold(now) and now + offset >= window

    def _ramp_cap(self, now: float) -> float:
        """Requests allowed in flight while nothing is known of the limit (see RAMP_START)."""
        if self._limit is not None or self._max_rate is not None or self._report_seq is not None:
            return math.inf
        elapsed = now - self._first if self._seq else 0.0
        if elapsed < RAMP_HOLD:
            return RAMP_START
        steps = 1 + int((elapsed - RAMP_HOLD) // RAMP_STEP)
        return math.floor(RAMP_START * RAMP_GROWTH ** min(steps, 64))

    async def _ramp(self, deadline: float | None) -> None:
        """Wait while the ramp's requests in flight are all out: each answer (or abandon)
        lets the next one check again; a deadline ends the wait, not the request."""
        while True:
            now = self._clock()
            if self._in_flight + self._admitted < self._ramp_cap(now):
                return
            if deadline is None:
                await self._answer_event.wait()
            elif now >= deadline:
                return
            else:
                await self._event_or(self._answer_event, deadline - now)

    def _log_cap(self, requests: float) -> int:
        """Sends allowed in any window's length for a learned count: the count itself, two
        more than the pace sends, so that it binds only when sends bunched (one less than
        the count bound at the pace: after a late wake-up's bunch, the next window's
        requests were held behind the bunch's echo, a second later and again each second,
        windows of 44-57 sent for 59 allowed). Arrivals that bunch more than the sends, past
        the count, meet a 429 that lowers it by one."""
        if not math.isfinite(requests) or requests > SENT_LOG_MAX:
            return SENT_LOG_MAX + 1  # beyond the log: paced only
        paced = math.floor(self._fraction * requests) + 2
        return max(1, min(paced, math.floor(requests)))

    def _log_send(self, now: float) -> None:
        log = self._sent_log
        log.append((self._seq, now))
        # While a watch is on, all its sends: a 429 is learned from them (_replay_windows).
        horizon = self._limit.window if self._limit is not None else 0.0
        if self._watch is not None:
            horizon = max(horizon, now - self._watch[1])
        while log and log[0][1] < now - horizon:
            log.popleft()

    async def _event_or(self, event: anyio.Event, seconds: float) -> None:
        async with anyio.create_task_group() as tasks:

            async def timer() -> None:
                await self._sleep(seconds)
                tasks.cancel_scope.cancel()

            tasks.start_soon(timer)
            await event.wait()
            tasks.cancel_scope.cancel()

    def _too_late(self, retry_after: float) -> RateLimitError:
        return RateLimitError(
            "the rate limit holds this request past its deadline",
            status=None,
            retry_after=max(0.0, retry_after),
        )

    # -- answers ------------------------------------------------------------------------------

    def _take_ticket(self) -> _Ticket | None:
        ticket = _TICKET.get()
        if ticket is None or ticket.gate is not self:
            return None
        _TICKET.set(None)
        return ticket

    def _answer_came(self) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        self._out_of_flight()
        if not self._answered:
            self._answered = True
            self._first_answer.set()

    def _out_of_flight(self) -> None:
        """Wake the ramp's waiters: one more may go."""
        self._answer_event.set()
        self._answer_event = anyio.Event()

    def abandon(self) -> None:
        """An acquired request got no answer (transport error, cancellation)."""
        ticket = self._take_ticket()
        self._in_flight = max(0, self._in_flight - 1)
        self._out_of_flight()
        if not self._answered and self._in_flight == 0:
            self._first_answer.set()  # let the next one try; the first answer is still awaited
            self._first_answer = anyio.Event()
        if ticket is not None and self._watch is not None and ticket.seq == self._watch[0]:
            self._watch = None  # the window's first request is unknown: watch the next one

    async def release(
        self, *, status: int, retry_after: float | None = None, info: RateLimitInfo | None = None
    ) -> None:
        """Account for the answer of an acquired request (call exactly once per acquire)."""
        now = self._clock()
        ticket = self._take_ticket()
        seq, sent = (ticket.seq, ticket.sent) if ticket is not None else (self._seq, now)
        self._answer_came()
        known = self._limit
        room = self._announced_room(seq) if status == 429 else 0
        if room and known is not None:
            twentieth = 0.05 * known.requests
            # Refused with a request or two left by the announcement (the server counts
            # one more than it says, or the last ones arrived out of order): each window
            # stops one request earlier from now on (a twentieth of the limit at most).
            self._budget_margin = min(self._budget_margin + 1, max(1, math.floor(twentieth)))
            if room > max(2.0, twentieth):
                # Refused with room left in the announced budget: something stricter than
                # the announcement binds (a proxy's limit, the account's other clients).
                # Pacing by the announcement would meet a 429 every window (the pattern a
                # ban is made of): from now on the limit is learned from the 429s, as
                # without headers.
                self._distrust_announced = True
                self._limit = None
                # Learn from this window, as the headers showed it opening: a watch begun
                # with the first request would replay the whole time paced by the
                # announcement.
                self._watch, self._watch_ok = None, 0
                if self._window_opened_seq is not None:
                    self._watch = (self._window_opened_seq, self._window_opened, None)
        if info is not None:
            self._note_headers(info, seq, sent, now)
        if self._watch is not None and seq >= self._watch[0]:
            if seq == self._watch[0]:
                self._watch = (seq, sent, now)
            if status != 429:
                self._watch_ok += 1
        if status == 429:
            self._responses_429 += 1
            self._learn(seq, sent, now, retry_after, info)
        elif self._limit is not None and now - self._calm_since >= self._limit.window:
            self._calm_window(now)
        if retry_after is not None and retry_after > 0:
            self.cool_down(retry_after)
        await self._share_deadline()
        if info is not None and ticket is not None and not self._local:
            # The budget every process paces by is what the answers report, whoever got
            # them: the store holds each reservation beyond it (a local gate does it itself).
            offset = self._offset(now)
            await self._store.report(
                number=ticket.number,
                remaining=info.remaining,
                limit=info.limit,
                sent=sent + offset,
                end=now + info.reset_after + offset,
                answered=now + offset,
            )

    def _announced_room(self, seq: int) -> int:
        """What the announced budget (this process's count of it) still left for request
        ``seq`` when it was refused; 0 when it had none or is not known here (with a shared
        store, the others' sends are not in this count)."""
        known = self._limit
        if not self._local or known is None or known.source != "announced":
            return 0
        if self._report_seq is None or seq <= self._report_seq:
            return 0
        return max(0, self._left_at(seq - 1))

    def _note_headers(self, info: RateLimitInfo, seq: int, sent: float, now: float) -> None:
        """Budget and window end from ``RateLimit-*``; the announced limit."""
        end = now + info.reset_after  # the server's clock <= ours at the answer: upper bound
        self._remaining_peak = max(self._remaining_peak, info.remaining)
        if self._report_seq is not None and seq < self._report_seq:
            # An earlier request answered late (it left before, arrived after, or its
            # answer took longer): within the window, the lowest remaining is the count
            # after every request reported so far arrived (as the shared store's rule).
            if max(self._window_opened, self._previous_end) <= sent < self._window_end:
                self._report_remaining = min(self._report_remaining, info.remaining)
                self._window_end = min(self._window_end, end)
            return
        # Arrivals reorder: a request sent later may arrive earlier and report a little
        # more left than expected. A new window shows as a rise past half the limit, or
        # as the first request's count (or as a request sent after the window's end).
        left = 0 if self._report_seq is None else self._left_at(seq)
        scale = info.limit if info.limit is not None else self._remaining_peak
        new_window = (
            self._report_seq is None
            or sent >= self._window_end
            or info.remaining - max(left, 0) > scale / 2
            # The first request of a window, whatever we believed of the last one (after a
            # pause, say: a stale end would spread this window's budget over too long).
            or (info.limit is not None and info.remaining == info.limit - 1)
        )
        if not new_window and sent < self._previous_end and info.remaining < left:
            # Left before the last window's end (as we bound it) and reports less than
            # this window has: it arrived in the last one, before the request that showed
            # us this one (whole-second resets cannot tell them apart). Taken as this
            # window's, its count would hold everyone until this window's end.
            return
        if new_window:
            # The last window ended before this answer's request arrived: by now.
            self._previous_end = -math.inf
            if self._report_seq is not None:
                self._previous_end = min(self._window_end, now)
            if info.limit is not None and info.remaining == info.limit - 1:
                if self._opener is not None:  # two openers: the window is no longer than this
                    # (Not below a second: windows announced in whole seconds are
                    # whole seconds, and openers closer than that mean the server started
                    # its count over, not a shorter window.)
                    bound = max(now - self._opener[0], 1.0)
                    self._window_bound = min(self._window_bound, bound)
                self._opener = (sent, now)
            else:
                self._opener = None
            self._window_end = end
            self._window_opened, self._window_opened_seq = sent, seq
        else:
            self._window_end = min(self._window_end, end)
        if self._opener is not None and self._window_bound < math.inf:
            self._window_end = min(self._window_end, self._opener[1] + self._window_bound)
        self._report_seq, self._report_remaining = seq, info.remaining
        if info.limit is not None and info.limit > 0 and not self._distrust_announced:
            window = info.window
            if window is None:
                # Announced limits count per window; its length is what reset said at the
                # window's first request (whole seconds), or what two openers bound.
                previous = self._limit.window if self._limit is not None else math.inf
                if self._opener is not None and info.remaining == info.limit - 1:
                    previous = min(previous, max(info.reset_after, MIN_WINDOW))
                window = min(previous, self._window_bound)
                if window == math.inf:
                    window = max(info.reset_after, 1.0)
            self._set_limit(float(info.limit), max(window, MIN_WINDOW), "announced")

    def _set_limit(self, requests: float, window: float, source: str) -> None:
        known = self._limit
        if known is not None and (known.requests, known.window, known.source) == (
            requests,
            window,
            source,
        ):
            return
        self._limit = SharedLimit(
            requests=requests, window=window, source=source, updated=self._wall()
        )
        self._fraction = ANNOUNCED_FRACTION if source == "announced" else LEARNED_FRACTION
        self._calm_since = self._clock()

    def _learn(
        self,
        seq: int,
        sent: float,
        now: float,
        retry_after: float | None,
        info: RateLimitInfo | None,
    ) -> None:
        """A 429: what it teaches of the limit (once per watched window)."""
        self._calm_since, self._probes = now, 0
        if info is not None and info.limit is not None and not self._distrust_announced:
            return  # announced: the budget rules already hold everyone until the window ends
        self._watch_from = max(self._watch_from, now + max(retry_after or 0.0, 0.0))
        if self._end_probe(retry_after):
            return
        watch = self._watch
        if watch is None or seq < watch[0]:
            # This window was learned from already, or began before what we watched. A
            # request counted as served in what was learned, refused after all (it left
            # before the refused one but arrived after it): one request less.
            counted = self._counted
            known = self._limit
            if (
                counted is not None
                and counted[0] <= seq < counted[1]
                and known is not None
                and known.source == "learned"
            ):
                self._set_limit(max(1.0, known.requests - 1), known.window, "learned")
            return
        self._watch = None
        self._counted = None
        first_seq, first_sent, first_answered = watch
        known = self._limit
        replayed = None
        if retry_after is not None and retry_after > 0:
            replayed = self._replay_windows(first_seq, seq, sent, now, retry_after)
        if (
            known is not None
            and known.source == "learned"
            and (retry_after or 0.0) <= known.window + 1.0
            and (
                (
                    replayed is not None
                    and known.window == replayed[1]
                    and replayed[0] >= known.requests - 1
                )
                or (replayed is None and sent - first_sent > 2 * known.window)
            )
        ):
            # At the learned pace, in windows of the learned length: the length stands
            # (re-learning it from the watch would take many windows for one); the count
            # was a little high, or arrivals bunched. One request less per window.
            self._set_limit(
                max(1.0, min(known.requests - 1, known.requests * 0.98)), known.window, "learned"
            )
            return
        if replayed is not None:
            count, window, opener = replayed
            self._set_limit(count, window, "learned")
            # Sends before this one in its window were counted as served: any of them
            # refused after all lowers the count (see above).
            self._counted = (opener, seq)
            return
        # Requests arrive in the order they leave: those sent before this one in the window
        # were counted (some of their answers may still be on the way; a refusal among
        # them lowers the count).
        answered = max(self._watch_ok, seq - first_seq)
        self._counted = (first_seq, seq) if answered > self._watch_ok else None
        if answered < 1:
            self._slow_down()
            if self._limit is None:
                # Nothing to pace by yet: once the cooldown (if any) is over, one request
                # alone again until an answer, rather than every waiter at once.
                self._answered, self._first_answer = False, anyio.Event()
            return
        opened_by = first_answered if first_answered is not None else now
        if retry_after is None or retry_after <= 0:
            # No deadline to bound the window: pace at a fraction of what was achieved.
            window = max(now - first_sent, MIN_WINDOW)
            self._set_limit(float(answered), window / BACKOFF, "learned")
            return
        # The window opened between our first request's sending and its answer; it ends
        # after the 429's request left (+ retry_after - 1: Retry-After rounds up) and by the
        # 429's answer + retry_after.
        low = max(sent + retry_after - 1.0 - opened_by, sent - opened_by, MIN_WINDOW / 2)
        high = max(now + retry_after - first_sent, MIN_WINDOW)
        self._window_low = max(self._window_low, low)
        whole = math.floor(high)
        window = float(whole) if whole > self._window_low and whole >= 1 else high
        self._set_limit(float(answered), window, "learned")

    def _replay_windows(
        self, first_seq: int, seq: int, sent: float, now: float, retry_after: float
    ) -> tuple[float, float, int] | None:
        """(requests, window, the sequence number of the window's first request) of the
        shortest whole-second window that explains this 429.

        The watch began with a fresh server window, but windows may have rolled over unseen
        since (a slow start meets the limit seconds later). For each candidate length, the
        server's windows are replayed on our log of sends (each opened by the first request
        after the previous one ended, as the service counts); the candidate holds when the
        window of the refused request ends where ``Retry-After`` says (whole seconds, rounded
        up, from some moment between the request's sending and its answer).
        """
        log = self._sent_log
        if not log or log[0][0] > first_seq:
            return None  # the log no longer holds the watch's beginning
        sends = [(number, at) for number, at in log if first_seq <= number < seq]
        first_sent = sends[0][1] if sends else sent
        # The server opens its windows on arrivals, we replay them on sends: a request's
        # way there (at most its round trip) blurs every boundary by that much.
        slack = max(MIN_WINDOW, now - sent)
        for window in REPLAY_WINDOWS:
            if window > now + retry_after - first_sent + slack:
                break
            # ``passed``: the most an earlier replayed window held (answered without a 429).
            # Near a boundary the refused request can fall early in our replay of a window
            # the server had already filled: the limit is never below what passed.
            start, opener, count, passed = first_sent, first_seq, 0, 0
            for number, at in sends:
                if at >= start + window:
                    start, opener, count, passed = at, number, 0, max(passed, count)
                count += 1
            if sent >= start + window + slack:
                continue  # the refused request would have opened a window of its own
            end = start + window
            if sent + retry_after - 1.0 - slack < end <= now + retry_after + slack:
                count = max(count, passed)
                return (float(count), float(window), opener) if count >= 1 else None
        return None

    def _end_probe(self, retry_after: float | None) -> bool:
        """A 429 while probing above the count that held: back to that count (True).

        Not one less than the probe: the count that held is the best known, and coming down
        one by one from the probe would cost one 429 event per step. Any other 429 ends the
        cycle too, and the count it refused is no longer held (False: the usual rules
        learn from it)."""
        known, verified, base = self._limit, self._verified, self._probe_base
        self._probe_base, self._probe_step, self._held = None, PROBE_STEP, None
        if known is None or known.source != "learned":
            return False
        if (
            base is None
            or verified is None
            or known.requests <= verified
            # A much longer Retry-After than the window: a limit of another kind (an
            # hourly quota, say), which the usual rules learn.
            or (retry_after or 0.0) > known.window + 1.0
        ):
            self._verified = None
            return False
        # A cycle that raised the count little met the limit it started at: probe again
        # later. One that raised it much may have more to gain: the usual wait.
        if verified >= base * (1 + PROBE_GAIN):
            self._probe_every = PROBE_EVERY
        else:
            self._probe_every = min(PROBE_EVERY_MAX, 2 * self._probe_every)
        fraction = self._fraction
        self._set_limit(verified, known.window, "learned")
        self._fraction = fraction  # the pace that held, as it held
        # The next request after the deadline watches a fresh window; the 429s of this
        # event that follow teach nothing more (the count they refused is given up).
        self._watch, self._counted = None, None
        return True

    def _slow_down(self) -> None:
        known = self._limit
        if known is not None:
            self._set_limit(known.requests * BACKOFF, known.window, known.source)

    def _calm_window(self, now: float) -> None:
        """A window's worth of time without a 429: raise a learned pace a little."""
        assert self._limit is not None
        self._calm_since = now
        known = self._limit
        if known.source != "learned":
            return
        sent = sum(1 for _, at in self._sent_log if at >= now - known.window)
        if sent < PACE_USED * self._fraction * known.requests:
            # The pace was not used (the callers asked for less): this window says nothing
            # of the limit. Counted as held, probes would raise the count without end (to
            # infinity within the hour, and then every acquire failed). (Not all of the
            # pace: a window after a probe's raise is partly at the pace before it.)
            self._held = None
            return
        # What a failed probe goes back to: a count that held two windows in a row. One
        # alone can hold by luck (the pace changed in mid-window, the server's windows fell
        # between the bunches): a count just past a fixed window's limit did, and was
        # refused two windows later, a second 429 event for one probe.
        if self._held is not None:
            self._verified = min(self._held, known.requests)
        self._held = known.requests
        if self._fraction < LEARNED_FRACTION_MAX:
            self._fraction = min(LEARNED_FRACTION_MAX, self._fraction + FRACTION_STEP)
            return
        if self._probe_base is not None:
            # The probe held: the next one at once, with twice the step (the gap to the
            # limit may be large: a geometric climb crosses it in a few windows).
            self._probe_step = min(PROBE_STEP_MAX, 2 * self._probe_step)
        else:
            self._probes += 1
            if self._probes < self._probe_every:
                return
            self._probes = 0
            self._probe_base, self._probe_step = known.requests, PROBE_STEP
        fraction = self._fraction
        self._set_limit(known.requests * (1 + self._probe_step), known.window, "learned")
        self._fraction = fraction

    # -- cooldowns ------------------------------------------------------------------------------

    def cool_down(self, seconds: float) -> None:
        """Forbid every request for ``seconds`` (extends, never shortens, a current cooldown)."""
        now = self._clock()
        deadline = now + max(0.0, seconds)
        if deadline > self._deadline:
            if self._deadline <= now:
                self.cooldowns += 1
            self._deadline = deadline
            self._deadline_to_share = deadline + self._offset(now)

    def _offset(self, now: float) -> float:
        """Store time minus gate time at gate time ``now`` (0 for the in-process store)."""
        return 0.0 if self._local else self._wall() - now

    async def _share_deadline(self) -> None:
        until, self._deadline_to_share = self._deadline_to_share, 0.0
        if until:
            await self._store.extend_deadline(until)
