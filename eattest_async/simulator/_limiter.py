"""The simulator's rate limiter: fixed windows per key, Retry-After and RateLimit headers."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ._plan import FaultPlan, RetryAfterFormat

__all__ = ["RateLimiter", "ratelimit_headers", "retry_after_header"]


@attrs.define
class _Window:
    started: float
    count: int = 0
    announced_at: float | None = None
    deadline: float | None = None  # wall-clock (time.time()) deadline announced


class RateLimiter:
    """Fixed windows per key, as API Entreprise counts: the first call opens the window."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}

    def reset(self) -> None:
        self._windows.clear()

    def note_arrival(self, key: str, now: float, grace: float) -> bool:
        """True when a request arrives before a deadline announced to this key, more than
        ``grace`` seconds after the announcement (earlier ones were already in flight)."""
        window = self._windows.get(key)
        if window is None or window.deadline is None or window.announced_at is None:
            return False
        return window.announced_at + grace < now < window.deadline

    def announce(self, key: str, now: float, deadline: float) -> None:
        window = self._windows.setdefault(key, _Window(started=now))
        if window.deadline is None or deadline > window.deadline:
            window.deadline = deadline
        window.announced_at = now

    def consume(self, key: str, plan: FaultPlan, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining, window end) for one more request under ``plan.rate_limit``."""
        assert plan.rate_limit is not None
        window = self._windows.get(key)
        if window is None or now >= window.started + plan.rate_window:
            previous = window
            window = _Window(started=now)
            if previous is not None:  # keep the last announcement for early-arrival counting
                window.announced_at, window.deadline = previous.announced_at, previous.deadline
            self._windows[key] = window
        end = window.started + plan.rate_window
        if window.count >= plan.rate_limit:
            return False, 0, end
        window.count += 1
        return True, plan.rate_limit - window.count, end


def retry_after_header(now: float, wait: float, fmt: RetryAfterFormat) -> tuple[str, float]:
    """The header value and the wall-clock deadline it announces."""
    if fmt == "http-date":
        deadline = math.ceil(now + wait)
        return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(deadline)), float(deadline)
    seconds = max(1, math.ceil(wait))
    return str(seconds), now + seconds


def ratelimit_headers(
    plan: FaultPlan, remaining: int, window_end: float, now: float
) -> dict[str, str]:
    if plan.rate_limit is None or plan.ratelimit_headers == "none":
        return {}
    delta = max(0, math.ceil(window_end - now))
    if plan.ratelimit_headers == "ietf":
        window = math.ceil(plan.rate_window)
        return {
            "RateLimit-Policy": f'"default";q={plan.rate_limit};w={window}',
            "RateLimit": f'"default";r={remaining};t={delta}',
        }
    reset = str(delta) if plan.ratelimit_reset == "delta" else str(math.ceil(window_end))
    return {
        "RateLimit-Limit": str(plan.rate_limit),
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": reset,
    }
