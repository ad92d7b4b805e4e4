"""Frozen, keyword-only settings: where the service is and how patiently to talk to it."""

from __future__ import annotations

import ipaddress
from typing import ClassVar
from urllib.parse import urlsplit

import attrs

from ._exceptions import InvalidInputError
from ._redact import redacted_url
from ._validation import check_concurrency

__all__ = ["Environment", "Limits", "RetryPolicy", "Timeouts", "is_loopback_host"]

_TOKEN_PATH = "/auth/realms/eat_realm/protocol/openid-connect/token"


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only hosts plain http is allowed to."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(url: str) -> str:
    return repr(redacted_url(url))


def _check_url(field: str, url: str, allow_http: bool) -> str:
    # The reasons never quote the URL: it may hold a password or a token (redacted_url).
    if not isinstance(url, str):
        raise InvalidInputError(field, "expected an absolute http(s) URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        raise InvalidInputError(field, "expected an absolute http(s) URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInputError(field, "expected an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidInputError(field, "credentials do not belong in the URL")
    if parts.scheme == "http" and not allow_http and not is_loopback_host(parts.hostname):
        raise InvalidInputError(
            field, "plain http is refused except on loopback; pass allow_http=True to insist"
        )
    return url.rstrip("/")


@attrs.frozen(kw_only=True)
class Environment:
    """The two URLs the client talks to, plus the fixed OIDC client id.

    Use ``Environment.TEST`` or ``Environment.PROD``, or ``Environment.custom(...)`` for the
    EDGE hosts, a proxy or the simulator.
    """

    name: str
    # Shown redacted: a query (or userinfo, refused) may hold a token or a password.
    base_url: str = attrs.field(repr=_shown)
    token_url: str = attrs.field(repr=_shown)
    client_id: str = "ea-api-edge"
    allow_http: bool = False

    TEST: ClassVar[Environment]
    PROD: ClassVar[Environment]
    EDGE_TEST: ClassVar[Environment]
    EDGE_PROD: ClassVar[Environment]

    def __attrs_post_init__(self) -> None:
        _check_url("base_url", self.base_url, self.allow_http)
        _check_url("token_url", self.token_url, self.allow_http)

    @classmethod
    def custom(
        cls,
        *,
        base_url: str,
        token_url: str,
        client_id: str = "ea-api-edge",
        allow_http: bool = False,
        name: str = "custom",
    ) -> Environment:
        """Any other deployment. ``base_url`` ends with ``/api/v1``."""
        return cls(
            name=name,
            base_url=_check_url("base_url", base_url, allow_http),
            token_url=_check_url("token_url", token_url, allow_http),
            client_id=client_id,
            allow_http=allow_http,
        )


Environment.TEST = Environment(
    name="test",
    base_url="https://rs.test-e-attestations.com/api/v1",
    token_url="https://auth.test-e-attestations.com" + _TOKEN_PATH,
)
Environment.PROD = Environment(
    name="prod",
    base_url="https://rs.e-attestations.com/api/v1",
    token_url="https://auth.e-attestations.com" + _TOKEN_PATH,
)
Environment.EDGE_TEST = Environment(
    name="edge-test",
    base_url="https://edge.test-e-attestations.com/api/v1",
    token_url="https://auth.test-e-attestations.com" + _TOKEN_PATH,
)
Environment.EDGE_PROD = Environment(
    name="edge-prod",
    base_url="https://edge.e-attestations.com/api/v1",
    token_url="https://auth.e-attestations.com" + _TOKEN_PATH,
)


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise InvalidInputError(attribute.name, "must be > 0")


@attrs.frozen(kw_only=True)
class Timeouts:
    """Seconds allowed for one *attempt* (API Entreprise's advice: 5 s JSON, 12 s files).

    Each attempt (connect, send, the whole answer) must finish within its timeout; waiting
    for a free connection of the pool is not counted. The whole *call* (every attempt,
    backoff, token grants, rate-limit waits) is bounded by ``RetryPolicy.deadline``.
    """

    json: float = attrs.field(default=5.0, validator=_positive)
    file: float = attrs.field(default=12.0, validator=_positive)
    token: float = attrs.field(default=5.0, validator=_positive)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How the single retry loop behaves.

    ``deadline`` bounds a whole call, in seconds: every attempt, the backoff between them,
    waiting for the token (its lock and its grant) and for the rate gate. A call never
    outlives it; when a wait cannot end before it (a long ``Retry-After``), the call fails
    at once with that error instead of waiting in vain.

    Retries transport errors and the ``statuses`` with exponential backoff and full jitter
    (``random() * min(max_backoff, initial_backoff * 2**n)``), never beyond ``attempts`` tries
    nor past ``deadline`` seconds in all. POSTs that may have reached the server are
    retried only with ``retry_non_idempotent=True``.

    A ``Retry-After`` is always honoured, up to a day (a longer or absurd value counts as a
    day): the client's rate gate lets no request leave before it, from any task (going on
    would earn the 12-hour ban). ``max_retry_after`` does not shorten it: it is the longest
    wait a call makes for it before retrying. A longer one, or one past the call's
    ``deadline``, ends the call at once with ``RateLimitError(retry_after=...)``, and every
    later call of the client fails fast the same way until the instant has passed. An answer
    with ``RateLimit-Remaining: 0`` holds the gate until its ``RateLimit-Reset`` the same
    way. There is no call to lift it: after a bogus header, close the client and open a new
    one; with a shared store (``EATTEST_REDIS_URL``) the deadline is kept in Redis under
    ``eattest:{...}:gate`` for the account (expiring a day after its last use): delete
    that key.
    """

    attempts: int = 6
    initial_backoff: float = 0.1
    max_backoff: float = 10.0
    deadline: float = 120.0
    max_retry_after: float = 300.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    retry_non_idempotent: bool = False

    def __attrs_post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInputError("attempts", "must be >= 1")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff", "must be >= 0")
        if self.deadline <= 0 or self.max_retry_after <= 0:
            raise InvalidInputError("deadline", "must be > 0")

    @classmethod
    def none(cls) -> RetryPolicy:
        """A single attempt: every failure surfaces at once."""
        return cls(attempts=1)


@attrs.frozen(kw_only=True)
class Limits:
    """Connection pool size, the default concurrency of scans, a known rate cap, and body
    size limits.

    ``max_rate`` (requests per second) is a contractual limit known in advance (e.g. 1000
    per minute per IP is ``1000 / 60``): the rate gate never exceeds it, even before the
    server's first answer. None: only what the server announces or teaches is used.

    No answer is read whole without a bound: a JSON answer beyond ``max_body_bytes``
    (counted after decompression) is a :class:`ResponseTooLargeError`, never retried;
    error answers and token answers are read up to their (smaller) limits only.

    ``max_download_bytes`` bounds every downloaded file as written to disk (after any
    decompression), whatever the server announces or does not: the write stops there, the
    partial file is removed, and the error is a :class:`ResponseTooLargeError`.
    """

    max_connections: int = 64
    scan_concurrency: int = 8
    max_rate: float | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    max_token_body_bytes: int = 1024 * 1024
    max_error_body_bytes: int = 64 * 1024
    max_download_bytes: int = 2 * 1024**3

    def __attrs_post_init__(self) -> None:
        if self.max_connections < 1:
            raise InvalidInputError("max_connections", "must be >= 1")
        check_concurrency(self.scan_concurrency, "scan_concurrency")
        if self.max_rate is not None and (
            isinstance(self.max_rate, bool)
            or not isinstance(self.max_rate, (int, float))
            or not 0 < self.max_rate < float("inf")
        ):
            raise InvalidInputError("max_rate", "must be a number of requests per second > 0")
        for name in (
            "max_body_bytes",
            "max_token_body_bytes",
            "max_error_body_bytes",
            "max_download_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
                raise InvalidInputError(name, "expected an integer >= 1024 (bytes)")
