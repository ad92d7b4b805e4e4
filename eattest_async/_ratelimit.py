"""RateGate: one per client, passed by every API request before it leaves.

The service bans an IP for 12 hours when a client keeps calling through 429s, so the rule
is absolute: once any response announces a ``Retry-After`` deadline, **no** request of
this client leaves before it, whichever task sends it. Beyond that, the gate paces ahead
of the limit from ``RateLimit-*`` headers so that the 429 rarely happens at all, and
releases waiters after a cooldown with a little jitter instead of all at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import anyio

from ._protocol import RateLimitInfo

__all__ = ["RateGate"]


class RateGate:
    """Cooldown deadline + budget of calls left in the server's current window."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._deadline = 0.0  # monotonic; nothing leaves before it
        self._cooldown_started = 0.0
        self._remaining: int | None = None  # calls we may still send in the server's window
        self._window_end = 0.0
        self._in_flight = 0
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
        release = self._deadline
        if self._remaining is not None and self._remaining <= 0:
            release = max(release, self._window_end)
        return release

    async def acquire(self) -> None:
        """Wait until a request may leave, then count it as in flight."""
        waited_from = self._clock()
        while True:
            release = self._release_at()
            now = self._clock()
            if now >= release:
                break
            # Spread the restart over a little jitter after the deadline (never before it).
            spread = min(0.5, 0.1 * max(release - self._cooldown_started, 0.0))
            await anyio.sleep(release - now + self._rng.uniform(0.0, spread))
        if self._remaining is not None:
            self._remaining -= 1
        self._in_flight += 1
        self.waited += self._clock() - waited_from

    def release(
        self, *, retry_after: float | None = None, info: RateLimitInfo | None = None
    ) -> None:
        """Account for the answer of an acquired request (call exactly once per acquire)."""
        self._in_flight = max(0, self._in_flight - 1)
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
