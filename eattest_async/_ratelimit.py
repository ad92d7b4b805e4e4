"""RateGate: one per client, passed by every API request before it leaves.

The service bans an IP for 12 hours when a client keeps calling through 429s, so the rule
is absolute: once any response announces a ``Retry-After`` deadline, **no** request of
this client leaves before it, whichever task sends it. Beyond that, the gate paces ahead
of the limit from ``RateLimit-*`` headers so that the 429 rarely happens at all, and
releases waiters after a cooldown with a little jitter instead of all at once.

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

import random
import time
from collections.abc import Callable
from typing import Protocol

import anyio
import attrs

from ._exceptions import RateLimitError
from ._protocol import RateLimitInfo

__all__ = ["GateStore", "LocalGateStore", "RateGate", "RateSnapshot", "SharedLimit"]


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
    """A limit worth sharing between processes: ``requests`` per ``window`` seconds.

    ``source`` is "announced" (RateLimit headers) or "learned" (from 429s); ``updated`` is
    the wall-clock time it was established, so that the newest knowledge wins.
    """

    requests: float
    window: float
    source: str
    updated: float

    @property
    def rate(self) -> float:
        return self.requests / self.window


class GateStore(Protocol):
    """Where the pacing state lives: in this process, or shared between processes (Redis).

    All times are wall-clock seconds (``time.time()``), so that processes agree. Each method
    is one atomic step: implementations must never let two callers interleave inside one
    call (a Lua script, a transaction, or a lock), and nothing else is assumed atomic.
    """

    async def reserve(
        self, *, now: float, interval: float, not_before: float, latest: float | None = None
    ) -> float:
        """One GCRA step: the time the caller's request may leave, reserved for it.

        ``slot = max(now, tat, deadline, not_before)`` where ``tat`` is the stored
        theoretical arrival time and ``deadline`` the stored cooldown deadline; then
        ``tat = slot + interval`` is stored. When ``latest`` is given and ``slot > latest``,
        nothing is stored (the caller will not send) and the slot is returned all the same.
        ``interval`` is >= 0 (0: no pacing, only the deadline holds).
        """
        ...

    async def extend_deadline(self, until: float) -> float:
        """Nothing may leave before ``until``: store ``max(deadline, until)``, never shorter.

        Returns the deadline now in force.
        """
        ...

    async def deadline(self) -> float:
        """The cooldown deadline in force (0.0 when none was ever set)."""
        ...

    async def publish_limit(self, limit: SharedLimit) -> None:
        """Share what was announced or learned; kept when ``limit.updated`` is not older
        than the stored one's."""
        ...

    async def limit(self) -> SharedLimit | None:
        """The newest shared limit, if any."""
        ...


class LocalGateStore:
    """:class:`GateStore` in this process (the default): plain attributes, no awaiting
    inside a call, so every call is atomic on the event loop."""

    def __init__(self) -> None:
        self._tat = 0.0
        self._deadline = 0.0
        self._limit: SharedLimit | None = None

    async def reserve(
        self, *, now: float, interval: float, not_before: float, latest: float | None = None
    ) -> float:
        slot = max(now, self._tat, self._deadline, not_before)
        if latest is None or slot <= latest:
            self._tat = slot + max(0.0, interval)
        return slot

    async def extend_deadline(self, until: float) -> float:
        self._deadline = max(self._deadline, until)
        return self._deadline

    async def deadline(self) -> float:
        return self._deadline

    async def publish_limit(self, limit: SharedLimit) -> None:
        if self._limit is None or limit.updated >= self._limit.updated:
            self._limit = limit

    async def limit(self) -> SharedLimit | None:
        return self._limit


class RateGate:
    """Cooldown deadline + budget of calls left in the server's current window."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_rate: float | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_rate = max_rate
        self._deadline = 0.0  # monotonic; nothing leaves before it
        self._cooldown_started = 0.0
        self._remaining: int | None = None  # calls we may still send in the server's window
        self._window_end = 0.0
        self._in_flight = 0
        self._next_slot = 0.0  # max_rate spacing
        self._requests = 0
        self._responses_429 = 0
        self._first = 0.0
        self._last = 0.0
        self.cooldowns = 0  # how many distinct cooldowns were imposed
        self.waited = 0.0  # total seconds requests spent waiting here

    @property
    def cooldown_remaining(self) -> float:
        return max(0.0, self._deadline - self._clock())

    def _release_at(self) -> float:
        """When the next request may leave: the cooldown, or the window end when out of budget."""
        now = self._clock()
        if self._remaining is not None and now >= self._window_end:
            self._remaining = None  # the server's window rolled over: budget unknown, probe
        release = max(self._deadline, self._next_slot)
        if self._remaining is not None and self._remaining <= 0:
            release = max(release, self._window_end)
        return release

    async def acquire(self, *, deadline: float | None = None) -> None:
        """Wait until a request may leave, then count it as in flight.

        Raises :class:`RateLimitError` at once when it could not leave before ``deadline``
        (on the gate's clock).
        """
        waited_from = self._clock()
        while True:
            release = self._release_at()
            now = self._clock()
            if now >= release:
                break
            if deadline is not None and release > deadline:
                raise RateLimitError(
                    "the rate limit holds this request past its deadline",
                    status=None,
                    retry_after=release - now,
                )
            # Spread the restart over a little jitter after the deadline (never before it).
            spread = min(0.5, 0.1 * max(release - self._cooldown_started, 0.0))
            await anyio.sleep(release - now + self._rng.uniform(0.0, spread))
        now = self._clock()
        if self._max_rate is not None:
            self._next_slot = max(self._next_slot, now) + 1.0 / self._max_rate
        if self._remaining is not None:
            self._remaining -= 1
        self._in_flight += 1
        self._requests += 1
        if self._requests == 1:
            self._first = now
        self._last = now
        self.waited += now - waited_from

    def abandon(self) -> None:
        """An acquired request got no answer (transport error, cancellation)."""
        self._in_flight = max(0, self._in_flight - 1)

    async def release(
        self, *, status: int, retry_after: float | None = None, info: RateLimitInfo | None = None
    ) -> None:
        """Account for the answer of an acquired request (call exactly once per acquire)."""
        self._in_flight = max(0, self._in_flight - 1)
        if status == 429:
            self._responses_429 += 1
        now = self._clock()
        if info is not None:
            # The server counted this request; the others still in flight may not be counted yet,
            # so assume the worst and keep them out of the budget.
            budget = info.remaining - self._in_flight
            window_end = now + info.reset_after
            if (
                self._remaining is None
                or window_end > self._window_end + 1.0
                or budget < self._remaining
            ):
                self._remaining = budget
            self._window_end = max(self._window_end, window_end) if budget <= 0 else window_end
        if retry_after is not None:
            self.cool_down(retry_after)

    def cool_down(self, seconds: float) -> None:
        """Forbid every request for ``seconds`` (extends, never shortens, a current cooldown)."""
        now = self._clock()
        deadline = now + max(0.0, seconds)
        if deadline > self._deadline:
            if self._deadline <= now:
                self.cooldowns += 1
                self._cooldown_started = now
            self._deadline = deadline

    def snapshot(self) -> RateSnapshot:
        active = self._last - self._first
        return RateSnapshot(
            requests=self._requests,
            responses_429=self._responses_429,
            request_rate=(self._requests - 1) / active if active > 0 else 0.0,
            limit=self._max_rate,
            limit_source="configured" if self._max_rate is not None else None,
            cooldowns=self.cooldowns,
            waited=self.waited,
        )
