"""The one retry loop of the library. Every call (token grants included, inside the attempt
of the call that needs them) goes through it, and there is no other loop around or inside.

It names what it retries on (see :func:`retry_cause`), backs off exponentially with full
jitter, honours ``Retry-After`` through the rate gate (which holds every request of the
client, not just this one), and gives up at ``attempts`` or at the call's ``deadline``,
which bounds everything: each attempt runs in a cancel scope ending at the deadline.
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
    RedirectError,
    RequestTimeoutError,
    ResponseTooLargeError,
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
    if isinstance(error, (ResponseTooLargeError, RedirectError)):
        return None  # the same answer would come again: waste no time nor memory on it
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
    attempt: Callable[[float], Awaitable[T]],
    *,
    policy: RetryPolicy,
    may_repeat: bool,
    on_retry: Callable[[str, EattestError], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    method: str = "",
    path: str = "",
    started: float | None = None,
) -> T:
    """Run ``attempt(deadline)`` until it succeeds or the policy says stop.

    ``deadline`` is on ``clock``: the attempt hands it to every wait it makes (the rate
    gate fails fast when it cannot let the request leave before it). The attempt also
    runs in a cancel scope that ends at the deadline, so nothing can outlive it: a call
    cut short there raises :class:`RequestTimeoutError`. Otherwise the last error is
    re-raised when the policy gives up.
    """
    rng = rng or random.Random()
    # ``started``: the call began earlier (it discovered the account id first).
    deadline = (clock() if started is None else started) + policy.deadline
    number = 0
    last: EattestError | None = None
    while True:
        number += 1
        remaining = deadline - clock()
        if remaining <= 0:
            break
        try:
            with anyio.move_on_after(remaining):
                return await attempt(deadline)
            break  # the deadline cut the attempt short
        except EattestError as error:
            last = error
            cause = retry_cause(error, may_repeat=may_repeat, policy=policy)
            if cause is None or number >= policy.attempts:
                raise
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            if retry_after is not None and retry_after > policy.max_retry_after:
                raise  # the gate keeps everyone away until then; waiting here would stall
            # A positive Retry-After: the gate holds the next request until then. Zero,
            # negative or past ones still back off, never a hot loop.
            if retry_after is not None and retry_after > 0:
                delay = 0.0
            else:
                cap = min(policy.max_backoff, policy.initial_backoff * 2 ** (number - 1))
                delay = (
                    rng.uniform(0.5 * cap, cap)
                    if retry_after is not None
                    else rng.uniform(0.0, cap)
                )
            if clock() + max(delay, retry_after or 0.0) > deadline:
                raise
            if on_retry is not None:
                on_retry(cause, error)
            if delay:
                await sleep(delay)
    timeout = RequestTimeoutError(
        f"the call did not complete within its deadline of {policy.deadline:g} s",
        method=method,
        path=path,
    )
    raise timeout from last
