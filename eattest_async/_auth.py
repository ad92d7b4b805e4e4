"""One OIDC token per client, renewed once for all tasks (single flight), and the 401 rule.

Renewal happens ahead of expiry by a margin derived from the lifetime the server returned
(a tenth of it, at most a minute), by the refresh_token grant while the refresh token
lives, falling back to the password grant when the server refuses it (any 400/401).

A token grant is one exchange through the core's pipeline, made inside the attempt of the
call that needs the token: it has no retry loop of its own, and the call's deadline bounds
it, the wait for the lock included. A renewal that fails is failed for every task that
was waiting for it (they do not each re-run it); the next attempt of a call tries anew.

With a :class:`TokenStore` (e.g. Redis, shared by several processes) a renewal takes the
store's lock, adopts a fresh shared token if another process already renewed, and saves
the token it obtains otherwise.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol, TypeGuard

import anyio
import attrs
import orjson

from ._exceptions import AuthenticationError, EattestError
from ._protocol import clip, loads, plain_number

__all__ = [
    "AuthFlow",
    "Secret",
    "Token",
    "TokenManager",
    "TokenRecord",
    "TokenStore",
    "account_ids_from_jwt",
]

logger = logging.getLogger("eattest_async")

# Lifetimes are clamped to these bounds: a tiny one would make nearly every call renew
# first; 0 is taken as "not said" (the default applies, and a 401 renews it when it ends).
MIN_LIFETIME = 0.5
DEFAULT_LIFETIME = 300.0
MAX_LIFETIME = 86_400.0
# A grant refused for good (bad credentials, an unusable answer) is answered from memory
# for this long: calls fail at once instead of each asking the IdP (and locking the account).
FAILURE_MEMORY = 5.0
_MAX_TEXT = 200  # characters of a server's error text kept in our messages


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _margin(lifetime: float) -> float:
    return min(0.1 * lifetime, 60.0)


def _header_safe(value: object) -> TypeGuard[str]:
    """A token we can put in a header as it is: visible ASCII only (no CR/LF, no spaces)."""
    return isinstance(value, str) and len(value) > 0 and all(0x21 <= ord(c) <= 0x7E for c in value)


def account_ids_from_jwt(token: str) -> tuple[int, ...]:
    """The ``account_ids`` claim of an access token (read, not verified: the server verifies).

    Whatever the claim holds (a list, a string "1,2", numbers, garbage), the answer is a
    tuple of positive account ids, possibly empty; never an exception.
    """
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return ()
    raw = claims.get("account_ids") if isinstance(claims, dict) else None
    if isinstance(raw, (list, tuple)):
        values = [str(v) for v in raw if isinstance(v, (str, int)) and not isinstance(v, bool)]
    elif isinstance(raw, (str, int)) and not isinstance(raw, bool):
        values = str(raw).replace(";", ",").split(",")
    else:
        values = []
    ids = []
    for value in (v.strip() for v in values):
        if value.isascii() and value.isdigit() and len(value) <= 18 and int(value) > 0:
            ids.append(int(value))
    return tuple(ids)


@attrs.frozen(kw_only=True)
class Token:
    """An access token and what is known of its life (times are ``time.monotonic()``)."""

    access: Secret
    refresh: Secret | None
    expires_at: float
    refresh_expires_at: float | None
    lifetime: float
    account_ids: tuple[int, ...]

    def fresh(self, now: float) -> bool:
        return now < self.expires_at - _margin(self.lifetime)

    def refreshable(self, now: float) -> bool:
        return self.refresh is not None and (
            self.refresh_expires_at is None or now < self.refresh_expires_at
        )


@attrs.frozen(kw_only=True)
class TokenRecord:
    """A token as a :class:`TokenStore` keeps it: wall-clock times (``time.time()``), so
    that processes can share it."""

    access: str = attrs.field(repr=False)
    refresh: str | None = attrs.field(repr=False)
    expires_at: float
    refresh_expires_at: float | None
    lifetime: float
    issued_at: float


class TokenStore(Protocol):
    """Where several processes share one token (see ``_coordination``); in-process if None."""

    async def load(self) -> TokenRecord | None: ...

    async def save(self, record: TokenRecord) -> None: ...

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Cross-process single flight: a lock with an expiry, its wait bounded."""
        ...


class FormSender(Protocol):
    """One exchange with the token endpoint, within the deadline of the call that needs it."""

    def __call__(
        self, form: Mapping[str, str], *, deadline: float
    ) -> Awaitable[tuple[int, bytes]]: ...


def _lifetime(value: object, field: str, *, default: float | None) -> float | None:
    """Seconds from an ``expires_in``-like field; garbage is an AuthenticationError."""
    if value is None:
        return default
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and len(value) < 32:
        number = plain_number(value)
    if number is None or math.isnan(number) or number < 0:
        raise AuthenticationError(
            f"the token endpoint answered an unusable {field}", error="invalid_token_response"
        )
    return number


class TokenManager:
    """Holds the client's token; ``get()`` and ``replace()`` are safe from any number of tasks."""

    def __init__(
        self,
        *,
        send_form: FormSender,
        username: str,
        password: Secret,
        client_id: str,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        store: TokenStore | None = None,
    ) -> None:
        self._send_form = send_form
        self._username = username
        self._password = password
        self._client_id = client_id
        self._clock = clock
        self._wall = wall
        self._store = store
        self._token: Token | None = None
        self._lock = anyio.Lock()
        self._generation = 0  # renewals completed (succeeded or failed)
        self._failure: EattestError | None = None  # how the last renewal failed, if it did
        self._failed_at = -math.inf
        self._recent: collections.deque[Token] = collections.deque(maxlen=4)
        # The token the server last refused: never handed out again, even if its renewal
        # failed (the call's next attempt renews instead of sending it back).
        self._refused: Token | None = None
        self.grants: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        return f"<TokenManager user={self._username!r} token={'set' if self._token else 'none'}>"

    @property
    def current(self) -> Token | None:
        return self._token

    def secrets(self) -> Iterator[str]:
        """Every secret this manager knows (to redact them from any server text)."""
        yield self._password.reveal()
        for token in (self._token, *self._recent):
            if token is not None:
                yield token.access.reveal()
                if token.refresh is not None:
                    yield token.refresh.reveal()

    async def get(self, *, deadline: float) -> Token:
        """A token fresh enough to use, renewing it first if needed (once for all waiters).

        ``deadline`` is the calling call's (on the core's clock): the grant's exchange
        hands it to the rate gate; the call's cancel scope bounds the rest.
        """
        token = self._token
        if token is not None and token is not self._refused and token.fresh(self._clock()):
            return token
        return await self._renew_once(refused=self._refused, deadline=deadline)

    async def replace(self, failed: Token, *, deadline: float) -> Token:
        """After a 401 with ``failed``: renew it unless another task already has."""
        if failed is self._token:
            self._refused = failed
        return await self._renew_once(refused=failed, deadline=deadline)

    async def _renew_once(self, *, refused: Token | None, deadline: float) -> Token:
        generation = self._generation
        async with self._lock:
            current = self._token
            failure = self._failure
            if failure is not None and (
                self._generation != generation  # the renewal we waited for failed: share it
                or (
                    isinstance(failure, AuthenticationError)
                    and self._clock() - self._failed_at < FAILURE_MEMORY
                )
            ):
                raise failure
            if current is not None and current is not refused and current.fresh(self._clock()):
                return current  # another task renewed it while we waited
            try:
                token = await self._renew(current, refused, deadline)
            except EattestError as exc:
                self._failure, self._failed_at = exc, self._clock()
                self._generation += 1
                raise
            self._token, self._failure = token, None
            self._recent.append(token)
            self._generation += 1
            return token

    async def _renew(self, current: Token | None, refused: Token | None, deadline: float) -> Token:
        if self._store is None:
            return await self._obtain(current, deadline)
        async with self._store.lock():
            record = await self._store.load()
            if record is not None:
                shared = self._adopt(record)
                if refused is None or shared.access != refused.access:
                    if shared.fresh(self._clock()):
                        logger.debug("token adopted from the shared store")
                        return shared
                    if shared.refreshable(self._clock()):
                        current = shared
            token = await self._obtain(current, deadline)
            await self._store.save(self._record(token))
            return token

    async def _obtain(self, old: Token | None, deadline: float) -> Token:
        if old is not None and old.refresh is not None and old.refreshable(self._clock()):
            try:
                return await self._grant(
                    "refresh_token", {"refresh_token": old.refresh.reveal()}, deadline
                )
            except AuthenticationError as exc:
                if exc.status not in (400, 401):
                    raise
                logger.info("refresh token refused (HTTP %s); signing in again", exc.status)
        return await self._grant(
            "password", {"username": self._username, "password": self._password.reveal()}, deadline
        )

    def _record(self, token: Token) -> TokenRecord:
        offset = self._wall() - self._clock()
        return TokenRecord(
            access=token.access.reveal(),
            refresh=token.refresh.reveal() if token.refresh is not None else None,
            expires_at=token.expires_at + offset,
            refresh_expires_at=(
                token.refresh_expires_at + offset if token.refresh_expires_at is not None else None
            ),
            lifetime=token.lifetime,
            issued_at=token.expires_at - token.lifetime + offset,
        )

    def _adopt(self, record: TokenRecord) -> Token:
        offset = self._clock() - self._wall()
        return Token(
            access=Secret(record.access),
            refresh=Secret(record.refresh) if record.refresh is not None else None,
            expires_at=record.expires_at + offset,
            refresh_expires_at=(
                record.refresh_expires_at + offset
                if record.refresh_expires_at is not None
                else None
            ),
            lifetime=record.lifetime,
            account_ids=account_ids_from_jwt(record.access),
        )

    async def _grant(self, grant_type: str, fields: Mapping[str, str], deadline: float) -> Token:
        started = self._clock()
        status, body = await self._send_form(
            {"client_id": self._client_id, "grant_type": grant_type, **fields}, deadline=deadline
        )
        data: Any = None
        try:
            data = loads(body) if body.strip() else None
        except orjson.JSONDecodeError:
            data = None
        if status != 200:
            error = data.get("error") if isinstance(data, dict) else None
            error = clip(error, _MAX_TEXT) if isinstance(error, str) else ""
            description = data.get("error_description") if isinstance(data, dict) else None
            description = clip(description, _MAX_TEXT) if isinstance(description, str) else ""
            raise AuthenticationError(
                f"the token endpoint refused the {grant_type} grant: HTTP {status}"
                + (f" {error}" if error else "")
                + (f" ({description})" if description else ""),
                status=status,
                error=error,
            )
        if not isinstance(data, dict) or "access_token" not in data:
            # Refused for good, like a bad lifetime: remembered (FAILURE_MEMORY) and shared,
            # not retried by every call (each retry a password grant: an account locked).
            what = (
                "an HTML page (a proxy or login page?)"
                if body.lstrip()[:1] == b"<"
                else "no JSON object"
                if not isinstance(data, dict)
                else "no access_token"
            )
            raise AuthenticationError(
                f"the token endpoint answered 200 with {what} instead of a token",
                status=status,
                error="invalid_token_response",
            )
        access = data["access_token"]
        if not _header_safe(access):
            raise AuthenticationError(
                "the token endpoint answered an access_token that cannot be sent in a header",
                status=status,
                error="invalid_token_response",
            )
        lifetime = _lifetime(data.get("expires_in"), "expires_in", default=DEFAULT_LIFETIME)
        refresh_lifetime = _lifetime(
            data.get("refresh_expires_in"), "refresh_expires_in", default=None
        )
        if not lifetime:
            logger.warning("token issued with no lifetime; assuming %.0f s", DEFAULT_LIFETIME)
            lifetime = DEFAULT_LIFETIME
        lifetime = min(max(lifetime, MIN_LIFETIME), MAX_LIFETIME)
        refresh = data.get("refresh_token")
        self.grants[grant_type] += 1
        logger.debug("token issued by %s grant, valid %.0f s", grant_type, lifetime)
        return Token(
            access=Secret(access),
            refresh=Secret(refresh) if _header_safe(refresh) else None,
            expires_at=started + lifetime,
            # 0 means "no expiry of its own" for Keycloak's offline tokens
            refresh_expires_at=(
                started + min(refresh_lifetime, 10 * MAX_LIFETIME) if refresh_lifetime else None
            ),
            lifetime=lifetime,
            account_ids=account_ids_from_jwt(access),
        )


class AuthFlow:
    """The 401 rule of one call (after httpx's ``Auth.auth_flow``): which token to send,
    and whether a 401 may be answered by renewing the token and replaying the request.

    Once per call; a second time only if the token refused is not the one already renewed
    (the renewal worked, and that new token was refused in turn: revoked again). The same
    token refused twice, or a third refusal, is final: no renewal storm is possible.
    """

    def __init__(self, tokens: TokenManager | None) -> None:
        self._tokens = tokens
        self._refused: list[Token] = []

    async def token(self, *, deadline: float) -> Token | None:
        return await self._tokens.get(deadline=deadline) if self._tokens is not None else None

    def wants_replay(self, status: int, token: Token | None) -> bool:
        """True when the answer is a 401 to renew ``token`` for and replay the request."""
        if status != 401 or token is None or self._tokens is None:
            return False
        if len(self._refused) >= 2 or (self._refused and self._refused[-1] is token):
            return False
        self._refused.append(token)
        return True

    async def renew(self, token: Token, *, deadline: float) -> None:
        assert self._tokens is not None
        await self._tokens.replace(token, deadline=deadline)
