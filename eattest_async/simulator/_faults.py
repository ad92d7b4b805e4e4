"""The simulator's fault plan (changeable while it runs), rate limiter and statistics."""

from __future__ import annotations

import collections
import math
import random
import time
from typing import Any, Literal

import attrs

FaultKind = Literal[
    "status",  # answer with ``status`` (and ``retry_after`` when given) instead of serving
    "drop",  # close the connection without answering
    "truncate",  # announce the full Content-Length, send half the body, close
    "slow",  # send half the body, stall ``delay`` seconds, then the rest
    "html",  # a proxy's HTML error page with ``status`` (default 502)
    "empty",  # 200 with an empty body
    "malformed",  # 200 with a body that is not JSON
    "revoke",  # revoke every session, then serve (so the request meets a 401)
    "expire",  # expire every access token (refresh tokens stay valid), then serve
    "expire_refresh",  # expire every access and refresh token (sign-in still works), then serve
    "delay",  # wait ``delay`` seconds, then serve normally
]

RetryAfterFormat = Literal["seconds", "http-date"]
RateLimitHeaders = Literal["draft", "ietf", "none"]


@attrs.define(kw_only=True)
class FaultAction:
    """One scripted fault, consumed by the next request of ``operation`` (any when None)."""

    kind: FaultKind
    status: int | None = None
    retry_after: float | None = None
    retry_after_format: RetryAfterFormat = "seconds"
    delay: float = 0.0
    operation: str | None = None
    times: int = 1

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define(kw_only=True)
class FaultPlan:
    """What goes wrong, and how often. Every field may be changed while the simulator runs.

    ``rate_limit`` requests per ``rate_window`` seconds are allowed per session (one
    sign-in, whatever its refreshed tokens), or for all sessions together with
    ``rate_scope="global"`` (a per-IP cap, shared by every process of a machine); past
    that, 429 with ``Retry-After`` until the window ends, and a request arriving before an
    announced deadline counts as early for every session of that scope.
    ``error_rate``/``drop_rate``/``truncate_rate`` are probabilities per API request;
    ``script`` is a queue of one-shot :class:`FaultAction`.
    """

    latency: float = 0.0
    jitter: float = 0.0
    rate_limit: int | None = None
    rate_window: float = 60.0
    rate_scope: Literal["session", "global"] = "session"
    retry_after_format: RetryAfterFormat = "seconds"
    ratelimit_headers: RateLimitHeaders = "draft"
    ratelimit_reset: Literal["delta", "epoch"] = "delta"
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 502, 503, 504)
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    drift_every: int = 0  # every N list-dossiers requests...
    drift_insert: int = 0  # ...insert this many dossiers among the existing ones
    drift_delete: int = 0  # ...and delete this many
    drift_touch: int = 0  # ...and change this many (stateLastChangeDate becomes now)
    early_grace: float = 0.1  # a request this soon after a 429 was already in flight
    # None: v1.1 (the spec's and the captured dossier's); "v1.3": the EDGE shape.
    document_shape: Literal["v1.1", "v1.3"] | None = None
    download_filename: str | None = None  # hostile names for download tests
    warning: str | None = None  # a W001 warning added to the messages of every JSON answer
    script: list[FaultAction] = attrs.field(factory=list)

    def add(self, *actions: FaultAction) -> None:
        """Queue scripted faults (consumed in order)."""
        self.script.extend(actions)

    def take(self, operation: str) -> FaultAction | None:
        """The next scripted fault for this operation, if any.

        An action without ``operation`` targets any API operation; the token endpoint is
        only faulted by actions that name it (``operation="token"``).
        """
        for index, action in enumerate(self.script):
            if action.operation == operation or (action.operation is None and operation != "token"):
                action.times -= 1
                if action.times <= 0:
                    del self.script[index]
                return action
        return None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["error_statuses"] = list(self.error_statuses)
        return data

    def update_from_json(self, data: dict[str, Any]) -> None:
        fields = attrs.fields_dict(FaultPlan)
        for key, value in data.items():
            if key not in fields:
                raise ValueError(f"unknown fault plan field: {key}")
            if key == "script":
                value = [FaultAction(**item) for item in value]
            elif key == "error_statuses":
                value = tuple(value)
            setattr(self, key, value)


@attrs.define
class RecordedRequest:
    """What the client sent (headers included, so tests can check Authorization handling)."""

    time: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    operation: str
    status: int | None = None


@attrs.define
class SimulatorStats:
    """Counters of what the simulator saw and did."""

    requests: collections.Counter[str] = attrs.field(factory=collections.Counter)
    statuses: collections.Counter[int] = attrs.field(factory=collections.Counter)
    token_grants: collections.Counter[str] = attrs.field(factory=collections.Counter)
    token_refusals: collections.Counter[str] = attrs.field(factory=collections.Counter)
    faults: collections.Counter[str] = attrs.field(factory=collections.Counter)
    rate_limited: int = 0
    early_requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    log: collections.deque[RecordedRequest] = attrs.field(
        factory=lambda: collections.deque(maxlen=20_000), repr=False
    )

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def api_requests(self) -> int:
        return self.total_requests - self.requests["token"]

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total_requests": self.total_requests,
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "token_grants": dict(self.token_grants),
            "token_refusals": dict(self.token_refusals),
            "faults": dict(self.faults),
            "rate_limited": self.rate_limited,
            "early_requests": self.early_requests,
            "max_in_flight": self.max_in_flight,
        }


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


def pick_random_fault(plan: FaultPlan, rng: random.Random) -> FaultAction | None:
    roll = rng.random()
    if roll < plan.drop_rate:
        return FaultAction(kind="drop")
    roll -= plan.drop_rate
    if roll < plan.truncate_rate:
        return FaultAction(kind="truncate")
    roll -= plan.truncate_rate
    if roll < plan.error_rate and plan.error_statuses:
        return FaultAction(kind="status", status=rng.choice(plan.error_statuses))
    return None
