"""One OIDC token per client, renewed once for all tasks (a single-flight lock).

Renewal happens ahead of expiry by a margin derived from the lifetime the server returned
(a tenth of it, at most a minute), by the refresh_token grant while the refresh token
lives, falling back to the password grant when the server rejects it (``invalid_grant``).
"""

from __future__ import annotations

import base64
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs
import orjson

from ._exceptions import AuthenticationError, UnexpectedResponseError

__all__ = ["Secret", "Token", "TokenManager", "account_ids_from_jwt"]

logger = logging.getLogger("eattest_async")


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


def account_ids_from_jwt(token: str) -> tuple[int, ...]:
    """The ``account_ids`` claim of an access token (read, not verified: the server verifies)."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return ()
    raw = claims.get("account_ids") if isinstance(claims, dict) else None
    values = raw if isinstance(raw, list) else str(raw or "").replace(";", ",").split(",")
    return tuple(int(v) for v in (str(v).strip() for v in values) if v.isdigit())


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


FormSender = Callable[[Mapping[str, str]], Awaitable[tuple[int, bytes]]]


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
    ) -> None:
        self._send_form = send_form
        self._username = username
        self._password = password
        self._client_id = client_id
        self._clock = clock
        self._token: Token | None = None
        self._lock = anyio.Lock()
        self.grants: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        return f"<TokenManager user={self._username!r} token={'set' if self._token else 'none'}>"

    @property
    def current(self) -> Token | None:
        return self._token

    async def get(self) -> Token:
        """A token fresh enough to use, renewing it first if needed (once for all waiters)."""
        token = self._token
        if token is not None and token.fresh(self._clock()):
            return token
        async with self._lock:
            token = self._token
            if token is not None and token.fresh(self._clock()):
                return token  # another task renewed it while we waited
            self._token = await self._renew(token)
            return self._token

    async def replace(self, failed: Token) -> Token:
        """After a 401 with ``failed``: renew it unless another task already has."""
        async with self._lock:
            if self._token is not None and self._token is not failed:
                return self._token
            self._token = await self._renew(failed)
            return self._token

    async def _renew(self, old: Token | None) -> Token:
        if old is not None and old.refresh is not None and old.refreshable(self._clock()):
            try:
                return await self._grant("refresh_token", {"refresh_token": old.refresh.reveal()})
            except AuthenticationError as exc:
                if exc.error != "invalid_grant":
                    raise
                logger.info("refresh token rejected (%s); signing in again", exc)
        return await self._grant(
            "password", {"username": self._username, "password": self._password.reveal()}
        )

    async def _grant(self, grant_type: str, fields: Mapping[str, str]) -> Token:
        started = self._clock()
        status, body = await self._send_form(
            {"client_id": self._client_id, "grant_type": grant_type, **fields}
        )
        data: Any = None
        try:
            data = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError:
            data = None
        if status != 200:
            error = str(data.get("error", "")) if isinstance(data, dict) else ""
            description = str(data.get("error_description", "")) if isinstance(data, dict) else ""
            raise AuthenticationError(
                f"the token endpoint refused the {grant_type} grant: HTTP {status}"
                + (f" {error}" if error else "")
                + (f" ({description})" if description else ""),
                status=status,
                error=error,
            )
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise UnexpectedResponseError(
                "the token endpoint answered without an access_token",
                status=status,
                method="POST",
                path="token",
            )
        self.grants[grant_type] += 1
        lifetime = float(data.get("expires_in") or 300)
        refresh_lifetime = data.get("refresh_expires_in")
        refresh = data.get("refresh_token")
        access = data["access_token"]
        logger.debug("token issued by %s grant, valid %.0f s", grant_type, lifetime)
        return Token(
            access=Secret(access),
            refresh=Secret(refresh) if isinstance(refresh, str) else None,
            expires_at=started + lifetime,
            # 0 means "no expiry of its own" for Keycloak's offline tokens
            refresh_expires_at=started + float(refresh_lifetime) if refresh_lifetime else None,
            lifetime=lifetime,
            account_ids=account_ids_from_jwt(access),
        )
