"""The simulator's fault plan (changeable while it runs, validated with types) and the
record of what it saw (requests, statistics).

Every field is checked when set, from Python or from ``PUT /_simulator/faults``; a plan
sent over HTTP is checked whole before any of it applies, so a refused PUT changes nothing.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable
from typing import Any, Literal

import attrs

from ._faults import FAULTS

# The kinds of scripted fault are the entries of ``_faults.FAULTS`` (one per kind).
FaultKind = str
RetryAfterFormat = Literal["seconds", "http-date"]
RateLimitHeaders = Literal["draft", "ietf", "none"]


def _number(*, minimum: float = 0.0, maximum: float = math.inf, optional: bool = False) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{attribute.name} must be a number, not {type(value).__name__}")
        if not (minimum <= value <= maximum):  # NaN fails too
            raise ValueError(f"{attribute.name} must be within [{minimum}, {maximum}]")

    return check


def _integer(*, minimum: int = 0, maximum: int = 2**31 - 1, optional: bool = False) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{attribute.name} must be an integer, not {type(value).__name__}")
        if not minimum <= value <= maximum:
            raise ValueError(f"{attribute.name} must be within [{minimum}, {maximum}]")

    return check


def _one_of(*choices: object, optional: bool = False) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if not isinstance(value, (str, type(None))) or value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(map(str, choices))}")

    return check


def _text(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a string or null")


def _kind(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or value not in FAULTS:
        raise ValueError(f"kind must be one of {', '.join(sorted(FAULTS))}")


@attrs.define(kw_only=True)
class FaultAction:
    """One scripted fault, consumed by the next request of ``operation`` (any when None).

    ``kind`` is one of the kinds of ``_faults.FAULTS`` (status, drop, truncate, slow, html,
    empty, malformed, revoke, expire, expire_refresh, delay).
    """

    kind: FaultKind = attrs.field(validator=_kind)
    status: int | None = attrs.field(
        default=None, validator=_integer(minimum=100, maximum=599, optional=True)
    )
    retry_after: float | None = attrs.field(
        default=None, validator=_number(maximum=86_400 * 7, optional=True)
    )
    retry_after_format: RetryAfterFormat = attrs.field(
        default="seconds", validator=_one_of("seconds", "http-date")
    )
    delay: float = attrs.field(default=0.0, validator=_number(maximum=3600))
    operation: str | None = attrs.field(default=None, validator=_text)
    times: int = attrs.field(default=1, validator=_integer(minimum=1))

    @classmethod
    def from_json(cls, data: object) -> FaultAction:
        if not isinstance(data, dict):
            raise TypeError("a scripted fault is a JSON object")
        unknown = set(data) - set(attrs.fields_dict(cls))
        if unknown:
            raise ValueError(f"unknown fault action field: {sorted(unknown)[0][:50]}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _statuses(value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise TypeError("error_statuses must be a list of HTTP statuses")
    if not all(type(s) is int and 100 <= s <= 599 for s in value):
        raise ValueError("error_statuses must be HTTP statuses (100-599)")
    return tuple(value)


def _script(value: object) -> list[FaultAction]:
    if not isinstance(value, list) or not all(isinstance(a, FaultAction) for a in value):
        raise TypeError("script must be a list of FaultAction")
    return value


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

    latency: float = attrs.field(default=0.0, validator=_number(maximum=600))
    jitter: float = attrs.field(default=0.0, validator=_number(maximum=600))
    rate_limit: int | None = attrs.field(default=None, validator=_integer(optional=True))
    rate_window: float = attrs.field(default=60.0, validator=_number(minimum=0.001, maximum=86_400))
    rate_scope: Literal["session", "global"] = attrs.field(
        default="session", validator=_one_of("session", "global")
    )
    retry_after_format: RetryAfterFormat = attrs.field(
        default="seconds", validator=_one_of("seconds", "http-date")
    )
    ratelimit_headers: RateLimitHeaders = attrs.field(
        default="draft", validator=_one_of("draft", "ietf", "none")
    )
    ratelimit_reset: Literal["delta", "epoch"] = attrs.field(
        default="delta", validator=_one_of("delta", "epoch")
    )
    error_rate: float = attrs.field(default=0.0, validator=_number(maximum=1))
    error_statuses: tuple[int, ...] = attrs.field(default=(500, 502, 503, 504), converter=_statuses)
    drop_rate: float = attrs.field(default=0.0, validator=_number(maximum=1))
    truncate_rate: float = attrs.field(default=0.0, validator=_number(maximum=1))
    drift_every: int = attrs.field(default=0, validator=_integer())  # every N list-dossiers...
    drift_insert: int = attrs.field(default=0, validator=_integer(maximum=10_000))  # ...insert
    drift_delete: int = attrs.field(default=0, validator=_integer(maximum=10_000))  # ...delete
    # ...and change this many (stateLastChangeDate becomes now)
    drift_touch: int = attrs.field(default=0, validator=_integer(maximum=10_000))
    # a request this soon after a 429 was already in flight
    early_grace: float = attrs.field(default=0.1, validator=_number(maximum=60))
    # None: v1.1 (the spec's and the captured dossier's); "v1.3": the EDGE shape.
    document_shape: Literal["v1.1", "v1.3"] | None = attrs.field(
        default=None, validator=_one_of("v1.1", "v1.3", optional=True)
    )
    # hostile names for download tests
    download_filename: str | None = attrs.field(default=None, validator=_text)
    # a W001 warning added to the messages of every JSON answer
    warning: str | None = attrs.field(default=None, validator=_text)
    script: list[FaultAction] = attrs.field(factory=list, converter=_script)

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
                if action.times <= 1:
                    del self.script[index]
                else:
                    action.times -= 1
                return action
        return None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["error_statuses"] = list(self.error_statuses)
        return data

    def update_from_json(self, data: object) -> None:
        """Apply a (partial) plan sent as JSON: all of it, or nothing if any part is wrong
        (TypeError or ValueError naming the field)."""
        if not isinstance(data, dict):
            raise TypeError("a fault plan is a JSON object")
        fields = attrs.fields_dict(FaultPlan)
        readers: dict[str, Callable[[Any], Any]] = {
            "script": lambda items: [FaultAction.from_json(item) for item in _listed(items)],
        }
        changes = {}
        for key, value in data.items():
            if key not in fields:
                raise ValueError(f"unknown fault plan field: {str(key)[:50]}")
            changes[key] = readers.get(key, lambda v: v)(value)
        checked = attrs.evolve(self, **changes)  # every validator runs on the whole plan
        for key in changes:
            setattr(self, key, getattr(checked, key))


def _listed(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError("script must be a list of fault actions")
    return value


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
