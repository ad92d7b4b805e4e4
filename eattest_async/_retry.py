"""The one retry loop of the library. Every request (token grants included) goes through it.

It names what it retries on (see :func:`retry_cause`), backs off exponentially with full
jitter, honours ``Retry-After`` through the rate gate (which holds every request of the
client, not just this one), and gives up at ``attempts`` or at the overall ``deadline``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ._config import RetryPolicy
from ._exceptions import (
    ApiError,
    ConnectError,
    EattestError,
    IncompleteResponseError,
    RateLimitError,
    RequestTimeoutError,
    UnexpectedResponseError,
)

__all__ = ["retry_cause", "retrying"]

T = TypeVar("T")


def retry_cause(error: EattestError, *, may_repeat: bool, policy: RetryPolicy) -> str | None:
    """Why ``error`` is worth another attempt, or None when it is final.

    ``may_repeat`` says the request may safely reach the server twice (idempotent, or the
    caller opted in). Failures the server certainly did not act on are retried regardless:
    a refused connection, a 429, a 503 that says when to come back.
    """
    if isinstance(error, ConnectError):
        return "connect" if error.transient else None
    if isinstance(error, ApiError) and error.status in policy.statuses:
        if isinstance(error, RateLimitError):
            return "429"
        if error.status == 503 and error.retry_after is not None:
            return "503"
        return str(error.status) if may_repeat else None
    if not may_repeat:
        return None
    if isinstance(error, RequestTimeoutError):
        return "timeout"
    if isinstance(error, IncompleteResponseError):
        return "incomplete"
    if isinstance(error, UnexpectedResponseError):
        return "bad-body"  # an HTML page or a garbled body from an intermediary is usually passing
    return None


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    may_repeat: bool,
    on_retry: Callable[[str, EattestError], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """Run ``attempt`` until it succeeds or the policy says stop; re-raise the last error."""
    rng = rng or random.Random()
    started = clock()
    number = 0
    while True:
        number += 1
        try:
            return await attempt()
        except EattestError as error:
            cause = retry_cause(error, may_repeat=may_repeat, policy=policy)
            if cause is None or number >= policy.attempts:
                raise
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            if retry_after is not None and retry_after > policy.max_retry_after:
                raise  # the gate keeps everyone away until then; waiting here would stall
            cap = min(policy.max_backoff, policy.initial_backoff * 2 ** (number - 1))
            # With a Retry-After the gate already holds the request until the deadline.
            delay = 0.0 if retry_after is not None else rng.uniform(0.0, cap)
            if clock() - started + max(delay, retry_after or 0.0) > policy.deadline:
                raise
            if on_retry is not None:
                on_retry(cause, error)
            if delay:
                await anyio.sleep(delay)
